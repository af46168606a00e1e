"""Pre-flight compile: the step compiles for a simulated mesh and reports memory and FLOPs."""

import os
import re

from conftest import SMOKE, module_command, run_command


def preflight(*args):
    cmd = module_command("avrl_jax.preflight", "--config", SMOKE, *args)
    return run_command(cmd, env=dict(os.environ, JAX_PLATFORMS="cpu"))


def numbers(pattern: str, text: str) -> list[float]:
    match = re.search(pattern, text)
    assert match, text
    return [float(x) for x in match.groups()]


def test_preflight_reports_per_device_memory_and_flops_and_fsdp_saves_memory():
    dp = preflight("--devices=8")
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
    (dp_args,) = numbers(r"arguments ([\d.e+-]+) GiB", dp.stdout)
    (fsdp_args,) = numbers(r"arguments ([\d.e+-]+) GiB", fsdp.stdout)
    # The state is most of the arguments: sharding it 8 ways shrinks what each device holds.
    assert fsdp_args < 0.5 * dp_args, (fsdp_args, dp_args)


def test_preflight_rejects_a_mesh_that_does_not_fit_the_devices():
    result = preflight("--devices=8", "--config.mesh.data=3")
    assert result.returncode != 0
    assert "mesh.data=3" in result.stderr
