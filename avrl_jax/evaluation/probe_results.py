"""The probes' results: WORKDIR/probe_results.json (merged under a lock, replaced atomically),
TensorBoard scalars, and the side-by-side table the CLI prints."""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
from collections.abc import Mapping

from avrl_jax import paths
from avrl_jax.metrics_writer import summary_writer

RESULTS_FILE = "probe_results.json"
RANDOM_INIT_KEY = "random_init"


@contextlib.contextmanager
def _locked(path: str):
    """An exclusive lock on `path`.lock, so concurrent probe jobs do not lose each other's
    results between reading and replacing the file. A bucket has no locks: there concurrent
    probe jobs of one workdir may lose each other's entries (run them one after another)."""
    if paths.is_url(path):
        yield
        return
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# An entry's fields that say what was probed: entries equal in these are one encoder on one
# task, whose metrics (from different probe configs, e.g. linear/MAP and the decoder) join.
SAME_PROBE_FIELDS = ("step", "encoder", "params", "task")


def join_entries(previous: dict | None, entry: dict) -> dict:
    """`entry`, with the metrics of `previous` that it does not have when both probed the same
    encoder on the same task (else `entry` alone: a re-probe with other settings replaces)."""
    if previous is None or any(previous.get(f) != entry.get(f) for f in SAME_PROBE_FIELDS):
        return entry
    return {**entry, "metrics": {**previous.get("metrics", {}), **entry["metrics"]}}


def merge_results(workdir: str, task: str, key: str, entry: dict) -> dict:
    """Sets results[task][key] = entry in WORKDIR/probe_results.json (joined with the entry
    there, see `join_entries`), keeping everything else; the file is replaced atomically
    (temporary file + rename). Returns the merged results."""
    path = paths.join(workdir, RESULTS_FILE)
    with _locked(path):
        results = json.loads(paths.read_text(path)) if paths.exists(path) else {}
        runs = results.setdefault(task, {})
        runs[key] = join_entries(runs.get(key), entry)
        # Insertion order: metrics as run_probes lists them.
        paths.write_atomic(path, json.dumps(results, indent=2))
    return results


def write_tensorboard(logdir: str, step: int, metrics: Mapping[str, float]) -> None:
    """Scalars `probe/<metric>` at `step` (tensorboardX: no TensorFlow needed)."""
    writer = summary_writer(logdir)
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


def plot_accuracy_by_step(workdir: str, task: str, params_kind: str = "online") -> str:
    """WORKDIR/plots/probe_<task>_steps.png: every "<probe>/accuracy" of the task's recorded
    results against the checkpoint step (the `params_kind` encoder), the random-init result
    dashed. Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = json.loads(paths.read_text(paths.join(workdir, RESULTS_FILE)))[task]
    trained = sorted(
        (entry["step"], entry["metrics"])
        for entry in runs.values()
        if entry.get("step") is not None and entry.get("params", "online") == params_kind
    )
    names = [n for n in dict.fromkeys(k for _, m in trained for k in m) if n.endswith("/accuracy")]
    baseline = runs.get(RANDOM_INIT_KEY, {}).get("metrics", {})
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, name in enumerate(names):
        points = [(step, 100 * m[name]) for step, m in trained if name in m]
        ax.plot(*zip(*points, strict=True), marker="o", color=f"C{i}", label=name)
        if name in baseline:
            ax.axhline(100 * baseline[name], color=f"C{i}", linestyle="--", linewidth=1)
    ax.set_xlabel("pretraining step")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{task} ({params_kind}; dashed: random init)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = paths.join(workdir, "plots", f"probe_{task}_steps.png")
    paths.makedirs(paths.dirname(path))
    with paths.open_file(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    return path
