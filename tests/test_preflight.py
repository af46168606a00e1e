"""Pre-flight compile: the step compiles for a simulated mesh and reports memory and FLOPs."""

import os
import re

import pytest
from conftest import SMOKE, module_command, run_command


def preflight(*args):
    cmd = module_command("avrl_jax.preflight", "--config", SMOKE, *args)
    return run_command(cmd, env=dict(os.environ, JAX_PLATFORMS="cpu"))


def numbers(pattern: str, text: str) -> list[float]:
    match = re.search(pattern, text)
    assert match, text
    return [float(x) for x in match.groups()]


def test_preflight_reports_per_device_memory_and_flops_and_fsdp_saves_memory():
    dp = preflight("--devices=8", "--target=v4", "--chips=4", "--mfu=0.5")
    fsdp = preflight(
        "--devices=8",
        "--config.mesh.fsdp=8",
        "--config.mesh.data=1",
        "--config.mesh.fsdp_min_size=256",
    )
    for result in (dp, fsdp):
        assert result.returncode == 0, result.stderr[-3000:]
    assert "mesh {'data': 8, 'fsdp': 1}" in dp.stdout
    assert "mesh {'data': 1, 'fsdp': 8}" in fsdp.stdout
    (flops,) = numbers(r"per device: ([\d.e+-]+) GFLOP", dp.stdout)
    assert flops > 0
    # The whole run (smoke: 6 steps) of the 8 devices' FLOPs on 4 TPU v4 chips at 50% MFU.
    steps, tflop, eflop, hours = numbers(
        r"projected run: (\d+) steps x ([\d.e+-]+) TFLOP = ([\d.e+-]+) EFLOP; on 4 x TPU v4 "
        r"\(275 TFLOP/s bf16 each\) at 50% MFU: ([\d.e+-]+) h",
        dp.stdout,
    )
    assert steps == 6 and tflop == pytest.approx(8 * flops / 1e3, rel=2e-3)
    assert eflop == pytest.approx(6 * tflop / 1e6, rel=2e-3)
    assert hours == pytest.approx(6 * tflop * 1e12 / (4 * 275e12 * 0.5) / 3600, rel=1e-2)
    (dp_args,) = numbers(r"arguments ([\d.e+-]+) GiB", dp.stdout)
    (fsdp_args,) = numbers(r"arguments ([\d.e+-]+) GiB", fsdp.stdout)
    # The state is most of the arguments: sharding it 8 ways shrinks what each device holds.
    assert fsdp_args < 0.5 * dp_args, (fsdp_args, dp_args)


def test_preflight_rejects_a_mesh_that_does_not_fit_the_devices():
    result = preflight("--devices=8", "--config.mesh.data=3")
    assert result.returncode != 0
    assert "mesh.data=3" in result.stderr
