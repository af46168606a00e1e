"""The probes' results: WORKDIR/probe_results.json (merged under a lock, replaced atomically),
TensorBoard scalars, and the side-by-side table the CLI prints."""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import tempfile
from collections.abc import Mapping

from tensorboardX import SummaryWriter

RESULTS_FILE = "probe_results.json"
RANDOM_INIT_KEY = "random_init"


@contextlib.contextmanager
def _locked(path: str):
    """An exclusive lock on `path`.lock, so concurrent probe jobs do not lose each other's
    results between reading and replacing the file."""
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def merge_results(workdir: str, task: str, key: str, entry: dict) -> dict:
    """Sets results[task][key] = entry in WORKDIR/probe_results.json, keeping everything else;
    the file is replaced atomically (temporary file + rename). Returns the merged results."""
    path = os.path.join(workdir, RESULTS_FILE)
    with _locked(path):
        results = {}
        if os.path.exists(path):
            with open(path) as f:
                results = json.load(f)
        results.setdefault(task, {})[key] = entry
        fd, temporary = tempfile.mkstemp(dir=workdir, prefix=RESULTS_FILE + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(results, f, indent=2)  # insertion order: metrics as run_probes lists them
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    return results


def write_tensorboard(logdir: str, step: int, metrics: Mapping[str, float]) -> None:
    """Scalars `probe/<metric>` at `step` (tensorboardX: no TensorFlow needed)."""
    writer = SummaryWriter(logdir=logdir)
    for name, value in metrics.items():
        if math.isfinite(value):
            writer.add_scalar(f"probe/{name}", value, step)
    writer.close()


def format_table(columns: Mapping[str, Mapping[str, float]]) -> str:
    """Metrics of several runs side by side: one row per metric, one column per run."""
    names = list(dict.fromkeys(name for metrics in columns.values() for name in metrics))
    width = max([len(n) for n in names] + [6])
    heads = [f"{c:>12}" for c in columns]
    lines = [f"{'metric':<{width}}  " + "  ".join(heads)]
    for name in names:
        cells = []
        for metrics in columns.values():
            value = metrics.get(name)
            cells.append(f"{'-':>12}" if value is None else f"{value:>12.4g}")
        lines.append(f"{name:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)


def sorted_runs(runs: Mapping[str, dict]) -> dict[str, dict]:
    """Result entries with the random-init baseline first, then by step."""
    order = sorted(runs, key=lambda k: (k != RANDOM_INIT_KEY, runs[k].get("step") or 0, k))
    return {k: runs[k]["metrics"] for k in order}
