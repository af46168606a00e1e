"""One trainer per workdir (avrl_jax.workdir_lock): a second one is refused naming the first,
a lock left by a killed trainer is taken over, and the real program holds it for its run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, logged, run_main, start_main

from avrl_jax import workdir_lock

HOLDER = """
import sys, time
from avrl_jax import workdir_lock
with workdir_lock.hold(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def _start_holder(workdir):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(workdir)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
    holder = _start_holder(tmp_path)
    try:
        with pytest.raises(workdir_lock.WorkdirBusyError, match=rf"pid {holder.pid}, started"):
            with workdir_lock.hold(str(tmp_path)):
                pass
        with workdir_lock.hold(str(tmp_path), enabled=False):  # processes other than 0
            pass
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holders_lock_is_taken_over_with_a_message(tmp_path, caplog):
    holder = _start_holder(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    note = json.loads((tmp_path / workdir_lock.LOCK_FILE).read_text())
    assert note["pid"] == holder.pid  # the dead holder's note is still there
    with caplog.at_level("WARNING"), workdir_lock.hold(str(tmp_path)):
        now = json.loads((tmp_path / workdir_lock.LOCK_FILE).read_text())
        assert now["pid"] == os.getpid()
    assert f"pid {holder.pid}" in caplog.text and "ended without releasing" in caplog.text
    # A clean end leaves no note behind, so the next start takes over nothing.
    assert (tmp_path / workdir_lock.LOCK_FILE).read_text() == ""


def test_two_trainers_on_one_workdir(tmp_path):
    # The first trainer is given far more steps than it can take during the test, so it is
    # certainly still training when the second starts; it is killed afterwards, and a third
    # trainer takes its lock over and resumes from its last checkpoint.
    first = start_main(
        tmp_path, "--config.total_steps=100000", "--config.checkpoint.every_steps=5", capture=False
    )
    try:
        deadline = time.time() + 120
        while not logged(tmp_path) and time.time() < deadline:  # the first is training
            time.sleep(0.5)
        assert logged(tmp_path), "the first trainer did not start"
        second = run_main(tmp_path, "--config.total_steps=100000")
        assert first.poll() is None, "the first trainer ended before the second was refused"
        assert second.returncode == 1, second.stderr[-2000:]
        assert f"is in use by another trainer (host {os.uname().nodename}, pid {first.pid}" in (
            second.stderr
        )
        assert "Traceback" not in second.stderr
        deadline = time.time() + 120
        while not _checkpoint_steps(tmp_path) and time.time() < deadline:
            time.sleep(0.5)
    finally:
        first.kill()
        first.wait()
    saved = max(_checkpoint_steps(tmp_path))
    third = run_main(tmp_path, f"--config.total_steps={saved + 5}", check=True)
    assert f"pid {first.pid}" in third.stderr and "ended without releasing" in third.stderr
    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert max(record["step"] for record in records) == saved + 5


def _checkpoint_steps(workdir) -> list[int]:
    directory = workdir / "checkpoints"
    if not directory.exists():
        return []
    return [int(name) for name in os.listdir(directory) if name.isdigit()]
