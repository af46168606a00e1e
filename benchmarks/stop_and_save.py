r"""What a save costs and how fast a run stops: checksums per save, and SIGTERM-to-exit.

For a config's train state (default: the ViT-S/16 AB-SimCLR model of configs/ab_vit_s16_cc12m.py
on the embedded scenes, with a small batch so that one step is short on a CPU):
1. In this process: the size of one checkpoint, the time of an asynchronous save (blocking part,
   then until complete), and the time to write and to verify its checksums (the cost checksums
   add to every save and every restore).
2. A training run as a subprocess: SIGTERM as soon as it has logged a step, then the seconds until
   it has saved the step reached and exited (a preemption notice gives 30 s), and that its exit
   status is 0 with the checkpoint in place.

  .venv/bin/python benchmarks/stop_and_save.py [--config configs/<name>.py[:arg]]
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import jax  # noqa: E402
from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from avrl_jax import checkpoint_checksums, sharding  # noqa: E402
from avrl_jax.checkpointing import Checkpointer, check_intact, checkpoint_dir  # noqa: E402
from avrl_jax.evaluation.study_runs import apply_overrides, override_flags  # noqa: E402
from avrl_jax.train import build_trainer, make_streams  # noqa: E402

DEFAULT_CONFIG = "configs/ab_vit_s16_cc12m.py:ab_simclr,scenes"
# Small enough that one step takes seconds on a CPU; the state (model, EMA, Adam) is full size.
OVERRIDES = {
    "annotation_batch_size": 4,
    "bootstrap_batch_size": 2,
    "env.view_size": 64,
    "data.worker_count": 0,
    "data.source_kwargs.num_scenes": 64,
    "fewshot_eval.every_steps": 0,
    "log_every": 1,
    "total_steps": 100_000,
    "checkpoint.every_steps": 100_000,
}

_CONFIG = config_flags.DEFINE_config_file("config", DEFAULT_CONFIG, "Training config.")
_TIMEOUT = flags.DEFINE_float("timeout", 900, "Seconds to wait for the run's first step.")


def directory_bytes(path: str) -> int:
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


def measure_save(config, workdir: str) -> None:
    mesh = sharding.make_mesh(config.mesh)
    trainer = build_trainer(config, mesh)
    iterators = {name: iter(ds) for name, ds in make_streams(config).items()}
    checkpointer = Checkpointer(workdir, every_steps=1, keep=2, async_save=True)
    start = time.perf_counter()
    checkpointer.save(1, trainer.state, iterators, force=True)
    blocking = time.perf_counter() - start
    checkpointer.manager.wait_until_finished()
    complete = time.perf_counter() - start
    step_dir = os.path.join(checkpoint_dir(workdir), "1")
    start = time.perf_counter()
    checkpoint_checksums.write_manifest(step_dir)
    write = time.perf_counter() - start
    start = time.perf_counter()
    assert check_intact(step_dir)
    verify = time.perf_counter() - start
    checkpointer.close()
    size = directory_bytes(step_dir)
    print(f"checkpoint: {size / 2**20:.1f} MiB, {len(jax.tree.leaves(trainer.state))} arrays")
    print(f"save: {blocking:.2f} s blocking, {complete:.2f} s until complete (async)")
    print(
        f"checksums: write {write:.2f} s ({size / write / 2**20:.0f} MiB/s, "
        f"{write / complete:.0%} of the save), verify {verify:.2f} s"
    )


def measure_sigterm(config_arg: str, workdir: str, timeout: float) -> None:
    command = [
        sys.executable,
        "-m",
        "avrl_jax.main",
        "--config",
        config_arg,
        "--workdir",
        workdir,
        *override_flags(OVERRIDES),
    ]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    metrics = os.path.join(workdir, "metrics.jsonl")
    deadline = time.time() + timeout
    while not (os.path.exists(metrics) and os.path.getsize(metrics)):
        if process.poll() is not None or time.time() > deadline:
            process.kill()
            raise SystemExit(
                f"the run ended or timed out before its first step:\n"
                f"{process.stderr.read().decode()[-3000:]}"
            )
        time.sleep(0.05)
    time.sleep(1.0)  # inside a step, not at its very start
    start = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=600)
    seconds = time.perf_counter() - start
    saved = [d for d in os.listdir(checkpoint_dir(workdir)) if d.isdigit()]
    stopped = "after saving a checkpoint" in stderr.decode()
    print(
        f"SIGTERM to exit: {seconds:.1f} s (exit status {process.returncode}, checkpoint "
        f"{saved}, {'saved' if stopped else 'NOT saved'}; a preemption notice gives 30 s)"
    )


def main(argv):
    del argv
    config = _CONFIG.value
    apply_overrides(config, OVERRIDES)
    config_arg = config_flags.get_config_filename(flags.FLAGS["config"])
    root = tempfile.mkdtemp(prefix="stop_and_save_")
    try:
        measure_save(config, os.path.join(root, "save"))
        measure_sigterm(config_arg, os.path.join(root, "run"), _TIMEOUT.value)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    app.run(main)
