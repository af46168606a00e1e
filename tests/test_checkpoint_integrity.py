"""A damaged checkpoint is damage, never a config change; nothing restarts from step 0 silently;
failed saves stop the run when they happen; leftovers and misplaced files are dealt with at start.
The smoke config trains 6 steps and saves at 2, 4 and 6."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import REPO, copy_workdir, logged, main_command, read_metrics, run_main

from avrl_jax import checkpoint_checksums
from avrl_jax.checkpointing import (
    DamagedCheckpointError,
    UnreadableCheckpointsError,
    check_intact,
    checkpoint_dir,
    restore_params,
)


def largest_array_file(step_dir: str) -> str:
    files = [
        os.path.join(root, name)
        for root, _, names in os.walk(os.path.join(step_dir, "state"))
        for name in names
        if "ocdbt" in root
    ]
    return max(files, key=os.path.getsize)


def flip_bytes(path: str, count: int = 16) -> None:
    """Bit rot: `count` bytes in the middle of the file inverted, its size unchanged."""
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        chunk = f.read(count)
        f.seek(os.path.getsize(path) // 2)
        f.write(bytes(b ^ 0xFF for b in chunk))


def saved_trees(workdir, step):
    return {
        name: restore_params(str(workdir), step, subtree=(name,))[1]
        for name in ("params", "target_params")
    }


def assert_trees_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished smoke run (checkpoints 2, 4, 6); tests copy it before changing it."""
    workdir = tmp_path_factory.mktemp("trained")
    run_main(workdir, check=True)
    return workdir


def test_every_saved_checkpoint_carries_checksums_that_verify(trained):
    directory = checkpoint_dir(str(trained))
    for step in (2, 4, 6):
        step_dir = os.path.join(directory, str(step))
        assert checkpoint_checksums.has_manifest(step_dir)
        assert check_intact(step_dir) is True


def test_flipped_bytes_fall_back_to_the_previous_checkpoint_and_redo_the_steps_bitwise(
    trained, tmp_path
):
    workdir = copy_workdir(trained, tmp_path)
    original = saved_trees(workdir, 6)
    directory = checkpoint_dir(str(workdir))
    flip_bytes(largest_array_file(os.path.join(directory, "6")))

    result = run_main(workdir, check=True)  # same config: redo steps 5 and 6 from step 4
    assert "fails its checksum" in result.stderr, result.stderr[-3000:]
    assert "Resumed from step 4" in result.stderr
    aside = os.listdir(os.path.join(directory, "unreadable"))
    assert len(aside) == 1 and aside[0].startswith("6-"), aside
    assert_trees_equal(saved_trees(workdir, 6), original)


def test_probes_skip_a_damaged_checkpoint_and_refuse_it_when_asked_for_by_step(trained, tmp_path):
    workdir = copy_workdir(trained, tmp_path)
    directory = checkpoint_dir(str(workdir))
    flip_bytes(largest_array_file(os.path.join(directory, "6")))
    step, _ = restore_params(str(workdir))
    assert step == 4
    with pytest.raises(DamagedCheckpointError, match=r"6 is damaged .*fails its checksum"):
        restore_params(str(workdir), 6)
    assert sorted(os.listdir(directory)) == ["2", "4", "6"]  # a read-only tool moves nothing


def test_missing_metadata_is_damage_not_another_config(trained, tmp_path):
    workdir = copy_workdir(trained, tmp_path)
    directory = checkpoint_dir(str(workdir))
    os.remove(os.path.join(directory, "6", "state", "_METADATA"))
    result = run_main(workdir, "--config.total_steps=8", check=True)
    assert "CheckpointMismatchError" not in result.stderr
    assert "state/_METADATA is missing" in result.stderr, result.stderr[-3000:]
    assert "Resumed from step 4" in result.stderr
    assert max(logged(workdir)) == 8


def test_metadata_loss_without_checksums_is_still_damage(trained, tmp_path):
    """A checkpoint from before checksums (no manifest): its metadata is checked all the same."""
    workdir = copy_workdir(trained, tmp_path)
    directory = checkpoint_dir(str(workdir))
    step_dir = os.path.join(directory, "6")
    os.remove(os.path.join(step_dir, checkpoint_checksums.MANIFEST))
    assert check_intact(step_dir) is False  # unverified, but intact
    os.remove(os.path.join(step_dir, "state", "_METADATA"))
    with pytest.raises(DamagedCheckpointError, match="_METADATA"):
        check_intact(step_dir)


def test_when_no_checkpoint_is_readable_the_run_stops_and_changes_nothing(trained, tmp_path):
    workdir = copy_workdir(trained, tmp_path)
    directory = checkpoint_dir(str(workdir))
    for step in (2, 4, 6):
        flip_bytes(largest_array_file(os.path.join(directory, str(step))))
    metrics = (workdir / "metrics.jsonl").read_bytes()

    result = run_main(workdir, "--config.total_steps=8")
    assert result.returncode == 1, result.stderr[-3000:]
    error = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1 and "UnreadableCheckpointsError" in error[0], result.stderr[-3000:]
    for step in (2, 4, 6):
        assert f"step {step}: " in error[0]
    assert "allow_fresh_start" in error[0] and "Traceback" not in result.stderr
    assert sorted(os.listdir(directory)) == ["2", "4", "6"]
    assert (workdir / "metrics.jsonl").read_bytes() == metrics

    # The explicit flag moves them aside and trains from step 0.
    result = run_main(workdir, "--config.checkpoint.allow_fresh_start=True", check=True)
    assert sorted(os.listdir(os.path.join(directory, "unreadable")))[0].startswith("2-")
    assert sorted(d for d in os.listdir(directory) if d.isdigit()) == ["2", "4", "6"]
    assert "Resumed" not in result.stderr
    assert [record["step"] for record in read_metrics(workdir)] == [2, 4, 6]  # a new run


def with_file_size_limit(command: list[str], limit_kib: int = 200) -> list[str]:
    """`command` where no file may grow past `limit_kib`: a larger write fails with EFBIG (the
    SIGXFSZ that would kill the process ignored, which exec keeps), as a full disk fails a
    write with ENOSPC."""
    return ["bash", "-c", f"trap '' XFSZ; ulimit -f {limit_kib}; exec \"$@\"", "bash", *command]


def test_a_failed_save_stops_the_run_before_the_next_save_with_one_line(tmp_path):
    command = main_command(
        tmp_path,
        "--config.total_steps=120",
        "--config.log_every=1",
        "--config.checkpoint.every_steps=40",
        "--config.fewshot_eval.every_steps=0",
    )
    result = subprocess.run(
        with_file_size_limit(command), cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 1, result.stderr[-3000:]
    expected = (
        f"error: CheckpointWriteError: checkpoint 40 could not be written to "
        f"{checkpoint_dir(str(tmp_path))}: File too large"
    )
    assert result.stderr.strip().splitlines()[-1] == expected, result.stderr[-3000:]
    # Reported when it happened, not at the next save (40 steps leave a slow machine time).
    assert 40 <= max(logged(tmp_path)) < 80
    # Orbax's and asyncio's tracebacks stay in the log file, off the console.
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) < 80


def test_checkpoints_as_a_file_is_refused_at_start(tmp_path):
    (tmp_path / "checkpoints").write_text("not a directory")
    result = run_main(tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: WorkdirLayoutError: {tmp_path}/checkpoints must be a directory (the trainer "
        "keeps its checkpoints there); move it out of the workdir, or pass another --workdir"
    )
    assert not logged(tmp_path)  # stopped before the first step


NO_LAYOUT_CHECK = """
import sys
sys.argv = ["main", "--config", "configs/default.py:smoke", "--workdir", sys.argv[1]]
from avrl_jax import cli, main, workdir_check
workdir_check.check_layout = lambda workdir: None  # let the misplaced file reach the saves
cli.run(main.main)
"""


def test_saves_that_cannot_start_end_the_process_without_a_hang(tmp_path):
    """Orbax's threads wait forever for a save directory that cannot be made; the process
    reports the failed save and still exits (bounded wait at exit)."""
    (tmp_path / "checkpoints").write_text("not a directory")
    result = subprocess.run(
        [sys.executable, "-c", NO_LAYOUT_CHECK, str(tmp_path)],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=REPO),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 1
    assert "CheckpointWriteError: checkpoint 2 could not be written" in result.stderr
    assert "Not a directory" in result.stderr.strip().splitlines()[-1]


def test_unfinished_saves_left_by_a_killed_run_are_removed_with_a_message(trained, tmp_path):
    workdir = copy_workdir(trained, tmp_path)
    directory = checkpoint_dir(str(workdir))
    leftover = os.path.join(directory, "8.orbax-checkpoint-tmp-1764748800")
    os.makedirs(os.path.join(leftover, "state"))
    result = run_main(workdir, "--config.total_steps=8", check=True)
    assert "Removed 1 unfinished checkpoint save" in result.stderr and leftover in result.stderr
    assert not os.path.exists(leftover)
    assert sorted(d for d in os.listdir(directory) if d.isdigit()) == ["4", "6", "8"]


def test_the_error_names_several_problems_when_many_files_are_damaged(tmp_path):
    step_dir = tmp_path / "7"
    (step_dir / "state").mkdir(parents=True)
    for i in range(5):
        (step_dir / "state" / f"f{i}").write_bytes(bytes(100))
    (step_dir / "state" / "_METADATA").write_text("{}")
    checkpoint_checksums.write_manifest(str(step_dir))
    for i in range(4):
        (step_dir / "state" / f"f{i}").write_bytes(bytes([1]) * 100)
    with pytest.raises(DamagedCheckpointError, match=r"f0 fails.*f1 fails.*f2 fails.* and 1 more"):
        check_intact(str(step_dir))
    for i in range(3):
        (step_dir / "state" / f"f{i}").write_bytes(bytes(100))
    os.remove(step_dir / "state" / "f4")
    (step_dir / "state" / "f3").write_bytes(bytes(3))
    with pytest.raises(DamagedCheckpointError, match=r"f3 has 3 bytes, 100 saved.*f4 is missing"):
        check_intact(str(step_dir))


def test_restore_params_reports_when_every_checkpoint_is_damaged(trained, tmp_path):
    workdir = copy_workdir(trained, tmp_path)
    directory = checkpoint_dir(str(workdir))
    for step in (2, 4, 6):
        os.remove(os.path.join(directory, str(step), "state", "_METADATA"))
    with pytest.raises(UnreadableCheckpointsError, match="step 6: .*step 4: .*step 2: "):
        restore_params(str(workdir))
