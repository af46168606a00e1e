"""Helpers shared by the test files, imported as `from conftest import ...` (pytest puts tests/
on sys.path, as for data_builders): the programs run as subprocesses from the repository root,
environments with simulated CPU devices, the run's metrics.jsonl, data-set batches, free ports."""

import json
import os
import socket
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = "configs/default.py:smoke"

# Compiling ---------------------------------------------------------------------------------

# Most of a test's time is XLA:CPU compiling the training step (the smoke step: ~10k lines of
# StableHLO, ~50 s at the default optimisation level, ~23 s at 0 on this machine's 2 cores).
# The tests run a few steps of tiny models, so they compile with LLVM's optimisation off:
# every test process (pytest's own, and through os.environ or cpu_env every subprocess) gets
# this flag before JAX starts its backend. Results agree with an optimised build to round-off
# (the smoke run's printed losses are identical); benchmarks and real runs keep the default.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()


# Order ------------------------------------------------------------------------------------

# The slowest test files (minutes each: whole training runs in subprocesses), slowest first.
# They run first, so that on the README's two workers (-n 2 --dist loadfile: a file per
# worker) neither worker is left alone with one of them at the end.
SLOW_FILES_FIRST = (
    "test_checkpointing.py",
    "test_study.py",
    "test_checkpoint_integrity.py",
    "test_multihost.py",
    "test_bootstrap_step.py",
    "test_value_search.py",
    "test_main.py",
    "test_config_history.py",
    "test_probes.py",
    "test_bucket_workdir.py",
    "test_train_step.py",
    "test_workdir_lock.py",
    "test_export.py",
    "test_metrics_writer.py",
)


def pytest_configure(config):
    # xdist's loadfile scheduler re-sorts the files by their number of tests (most first)
    # unless told not to, which sent these few-test, slow files last; keep the order above.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOW_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order in a file


# Subprocesses ------------------------------------------------------------------------------


def module_command(module: str, *args: str) -> list[str]:
    """`python -m module args...` with the interpreter running the tests."""
    return [sys.executable, "-m", module, *args]


def main_command(workdir, *overrides: str) -> list[str]:
    """The training program on the smoke config, writing to `workdir`."""
    return module_command("avrl_jax.main", "--config", SMOKE, "--workdir", str(workdir), *overrides)


def run_command(cmd: list[str], env: dict | None = None, timeout: float = 600):
    """Run `cmd` from the repository root to its end, its output captured as text."""
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def run_python(source: str, *args: str, env: dict | None = None):
    """Run a Python program given as source text (`python -c source args...`)."""
    return run_command([sys.executable, "-c", source, *args], env=env)


def run_main(workdir, *overrides: str, env: dict | None = None, check: bool = False):
    """Run the training program to its end; with `check`, assert that it succeeded."""
    result = run_command(main_command(workdir, *overrides), env=env)
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def start_main(workdir, *overrides: str, env: dict | None = None, capture: bool = True):
    """Start the training program in the background. With `capture` its output is read by
    `communicate()`; without, it is discarded."""
    output = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(
        main_command(workdir, *overrides),
        cwd=REPO,
        env=env,
        stdout=output,
        stderr=output,
        text=True,
    )


def copy_workdir(source, destination):
    """A copy of a run's workdir (checkpoints, config, metrics) for a test to change."""
    subprocess.run(["cp", "-a", f"{source}/.", str(destination)], check=True)
    return destination


def cpu_env(devices: int) -> dict:
    """The environment of a subprocess on `devices` simulated CPU devices, the repository
    importable (configs included)."""
    flags = f"{TEST_XLA_FLAGS} --xla_force_host_platform_device_count={devices}"
    env = dict(os.environ, XLA_FLAGS=flags)
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that no one listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# metrics.jsonl -----------------------------------------------------------------------------


def read_metrics(workdir) -> list[dict]:
    """Every record of the run's metrics.jsonl, in the order written."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def logged(workdir) -> dict[int, dict]:
    """The last record per step (a resumed run rewrites the steps after its checkpoint); {}
    while the run has written none."""
    if not os.path.exists(os.path.join(workdir, "metrics.jsonl")):
        return {}
    return {record["step"]: record for record in read_metrics(workdir)}


def losses(workdir, keys=("loss", "base/loss", "ab/loss")) -> np.ndarray:
    """[steps, keys]: the `keys` of the last record per step, by step."""
    records = {record["step"]: record for record in read_metrics(workdir)}
    return np.array([[records[s][k] for k in keys] for s in sorted(records)])


# Data sets ---------------------------------------------------------------------------------


def take(ds, n: int) -> list[dict[str, np.ndarray]]:
    """The first n batches of a data set, from a fresh iterator."""
    it = iter(ds)
    return [next(it) for _ in range(n)]


def assert_batches_equal(got: dict, want: dict) -> None:
    """Every field of `want` is in `got`, with the same array."""
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])
