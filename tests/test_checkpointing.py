"""Checkpoints: exact resume after SIGKILL, clean stop on SIGTERM, corrupt checkpoints skipped,
restore under another device count, partial restore for probes."""

import os
import random
import re
import signal
import textwrap
import time

import jax
import numpy as np
import pytest
from conftest import (
    cpu_env,
    logged,
    module_command,
    run_command,
    run_main,
    run_python,
    start_main,
)

from avrl_jax.checkpointing import checkpoint_dir, restore_params


def wait_for_step(process, workdir, step, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if logged(workdir) and max(logged(workdir)) >= step:
            return
        assert process.poll() is None, "run ended before the step was reached"
        time.sleep(0.05)
    raise TimeoutError(f"step {step} not reached in {timeout}s")


LOSSES = ("loss", "base/loss", "ab/loss", "grad_norm")
LONG = ("--config.total_steps=14", "--config.log_every=1", "--config.checkpoint.every_steps=3")


def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    run_main(reference, *LONG, check=True)
    kill_at = random.Random().randint(4, 11)
    process = start_main(interrupted, *LONG, capture=False)
    try:
        wait_for_step(process, interrupted, kill_at)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert max(logged(interrupted)) < 14, "the run finished before it was killed"
    run_main(interrupted, *LONG, check=True)

    expected, got = logged(reference), logged(interrupted)
    assert sorted(got) == sorted(expected) == list(range(1, 15))
    for step in expected:
        for name in LOSSES:
            # Bitwise on CPU: the same compiled program sees the same batches and state.
            assert got[step][name] == expected[step][name], (kill_at, step, name)
    _, params_ref = restore_params(str(reference), subtree=("params",))
    _, params_got = restore_params(str(interrupted), subtree=("params",))
    for a, b in zip(jax.tree.leaves(params_ref), jax.tree.leaves(params_got), strict=True):
        np.testing.assert_array_equal(a, b)
    _, target_ref = restore_params(str(reference), subtree=("target_params",))
    _, target_got = restore_params(str(interrupted), subtree=("target_params",))
    for a, b in zip(jax.tree.leaves(target_ref), jax.tree.leaves(target_got), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_the_step_reached_and_exits_cleanly(tmp_path, signum):
    """SIGTERM (preemption, scancel) and SIGINT (Ctrl-C) alike."""
    overrides = (
        "--config.total_steps=500",
        "--config.log_every=1",
        "--config.checkpoint.every_steps=1000",
    )
    process = start_main(tmp_path, *overrides)
    wait_for_step(process, tmp_path, 3)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    reached = max(logged(tmp_path))
    assert 3 <= reached < 500
    assert f"Received {signal.Signals(signum).name}: saving a checkpoint" in stderr
    assert f"Stopped at step {reached} after saving a checkpoint" in stderr
    steps = sorted(int(d) for d in os.listdir(checkpoint_dir(str(tmp_path))) if d.isdigit())
    assert steps == [reached]
    step, params = restore_params(str(tmp_path))
    assert step == reached and jax.tree.leaves(params)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_start_up_exits_cleanly_with_a_message(tmp_path, signum):
    process = start_main(tmp_path)
    log = tmp_path / "logs" / "train.log"  # opened by the program itself, after its handlers
    deadline = time.time() + 120
    while not log.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert log.exists(), "the program did not start"
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    name = signal.Signals(signum).name
    assert process.returncode == 0, stderr[-3000:]
    assert stderr.strip().splitlines()[-1].startswith(f"stopped by {name} during start-up")
    assert "Traceback" not in stderr
    assert not logged(tmp_path)
    directory = checkpoint_dir(str(tmp_path))
    assert not os.path.isdir(directory) or not [d for d in os.listdir(directory) if d.isdigit()]


def corrupt(checkpoint: str) -> None:
    """Overwrite every file of the checkpoint's state item with garbage."""
    for root, _, files in os.walk(os.path.join(checkpoint, "state")):
        for name in files:
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"not a checkpoint")


def test_corrupt_newest_checkpoint_resumes_from_the_previous(tmp_path):
    run_main(tmp_path, check=True)  # smoke: 6 steps, checkpoints at 2, 4, 6
    directory = checkpoint_dir(str(tmp_path))
    corrupt(os.path.join(directory, "6"))
    result = run_main(tmp_path, "--config.total_steps=8", check=True)
    assert "Checkpoint" in result.stderr and os.path.join(directory, "6") in result.stderr
    assert "Resumed from step 4" in result.stderr
    aside = os.listdir(os.path.join(directory, "unreadable"))
    assert len(aside) == 1 and aside[0].startswith("6-"), aside
    assert max(logged(tmp_path)) == 8
    assert restore_params(str(tmp_path))[0] == 8


def test_another_config_in_the_workdir_stops_naming_the_difference_and_moves_nothing(tmp_path):
    """A checkpoint of another config is not a damaged one: none is moved aside, the run stops.
    Two kinds: other parameter shapes, and only another optimizer-state structure."""
    run_main(tmp_path, check=True)  # smoke: checkpoints at 2, 4, 6
    directory = checkpoint_dir(str(tmp_path))
    config_json = (tmp_path / "config.json").read_text()
    for override, difference in [
        ("--config.model.embed_dim=48", "params/base_query/layers/1/bias: saved (32,), this run"),
        # Without clipping the optax chain has one transformation less: opt_state/1 -> /0.
        ("--config.optimizer.grad_clip_norm=0", "opt_state/0/0/count: saved nothing, this run"),
    ]:
        result = run_main(tmp_path, override, "--config.total_steps=8")
        assert result.returncode != 0, override
        message = f"CheckpointMismatchError: Checkpoint {os.path.join(directory, '6')}"
        assert message in result.stderr, result.stderr[-3000:]
        assert difference in result.stderr and "config.json" in result.stderr, override
        assert sorted(os.listdir(directory)) == ["2", "4", "6"]  # nothing moved to unreadable/
        # The refused run left the workdir's config.json (its checkpoints' config) alone.
        assert (tmp_path / "config.json").read_text() == config_json, override
    assert max(logged(tmp_path)) == 6
    # The error's advice, followed as written, resumes the run (here training on to step 8).
    advice = re.search(r"python -m avrl_jax\.main (--config \S+) --workdir (\S+);", result.stderr)
    assert advice and advice.group(2) == str(tmp_path), result.stderr[-2000:]
    command = module_command(
        "avrl_jax.main",
        *advice.group(1).split(),
        "--workdir",
        str(tmp_path),
        "--config.total_steps=8",
    )
    resumed = run_command(command)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resumed from step 6" in resumed.stderr and max(logged(tmp_path)) == 8


def test_non_finite_loss_stops_the_run_before_it_is_saved(tmp_path):
    """A NaN/Inf stops the run naming the step, and no checkpoint holds the broken state, even
    when a checkpoint falls between two logging steps (here: saves every 3, logs every 4)."""
    overrides = (
        "--config.optimizer.learning_rate=1e30",  # finite at steps 1-2, NaN from step 3
        "--config.total_steps=8",
        "--config.log_every=4",
        "--config.checkpoint.every_steps=3",
        "--config.fewshot_eval.every_steps=0",
    )
    result = run_main(tmp_path, *overrides)
    assert result.returncode != 0
    assert "NonFiniteLossError: loss became NaN/Inf at step 3" in result.stderr, result.stderr[
        -3000:
    ]
    directory = checkpoint_dir(str(tmp_path))
    saved = sorted(int(d) for d in os.listdir(directory) if d.isdigit())
    assert saved == [], saved  # the first save (step 3) would have held NaN parameters


def test_restore_params_without_checkpoint_names_the_workdir(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        restore_params(str(tmp_path))


MESH_SCRIPT = textwrap.dedent(
    """
    import sys
    import jax
    import numpy as np
    from avrl_jax import sharding
    from avrl_jax.checkpointing import Checkpointer
    from avrl_jax.train import build_trainer, make_streams
    from configs import default

    workdir = sys.argv[1]
    config = default.get_config("smoke")

    # One trainer per mesh (each compiles its update step once), used in both directions.
    trainers = {}
    for count in (8, 1):
        mesh = sharding.make_mesh(config.mesh, devices=jax.devices()[:count])
        trainers[count] = mesh, build_trainer(config, mesh)
    streams = lambda: {k: iter(ds) for k, ds in make_streams(config).items()}

    for name, saved_on, restored_on in [("8to1", 8, 1), ("1to8", 1, 8)]:
        (mesh, trainer), its = trainers[saved_on], streams()
        state = jax.tree.map(lambda x: x.copy(), trainer.state)  # the update donates its input
        for _ in range(2):
            batch = sharding.global_batch({k: next(it) for k, it in its.items()}, mesh)
            state, _ = trainer.update(state, batch)
        checkpointer = Checkpointer(f"{workdir}/{name}", every_steps=1, keep=2)
        checkpointer.save(2, state, its, force=True)
        checkpointer.close()
        expected_next = {k: next(it) for k, it in its.items()}

        (mesh2, trainer2), its2 = trainers[restored_on], streams()
        checkpointer = Checkpointer(f"{workdir}/{name}", every_steps=1, keep=2)
        restored = checkpointer.restore_latest(trainer2.state, its2)
        checkpointer.close()
        assert int(restored.step) == 2
        for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
            assert b.sharding.device_set == set(jax.devices()[:restored_on]), (name, b.sharding)
        got_next = {k: next(it) for k, it in its2.items()}
        for k in expected_next:
            np.testing.assert_array_equal(got_next[k]["index"], expected_next[k]["index"])
        # The restored state trains on under the new mesh.
        batch = sharding.global_batch(got_next, mesh2)
        trainer2.update(restored, batch)
        print("OK", name)
    """
)


def test_restore_under_another_device_count(tmp_path):
    result = run_python(MESH_SCRIPT, str(tmp_path), env=cpu_env(8))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "OK 8to1" in result.stdout and "OK 1to8" in result.stdout
