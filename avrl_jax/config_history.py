"""WORKDIR/config.json across resumes: what changed is kept and logged, and a change that would
make a resumed run read other data is refused.

A resumed run compares its config with the workdir's config.json (the config of the run that
wrote the checkpoints). Any difference is logged field by field, and the previous file is kept as
`config.<step>.json` before the new config is written. A change of a field in
`DATA_ORDER_FIELDS` (the seed, the batch sizes, the data sets) would change the order of the
data or what a step means, so the resumed run would not continue the one it resumes; it is
refused unless `checkpoint.allow_data_order_change` says so. `PERMISSIONS` (one-off flags of
the resuming command) are not differences.
"""

from __future__ import annotations

import json

from absl import logging

from avrl_jax import paths
from avrl_jax.errors import UserError

CONFIG_FILE = "config.json"
DATA_ORDER_FIELDS = (
    "seed",
    "annotation_batch_size",
    "bootstrap_batch_size",
    "data.name",
    "data.source_kwargs",
    "annotation_data.name",
    "annotation_data.source_kwargs",
)
PERMISSIONS = ("checkpoint.allow_fresh_start", "checkpoint.allow_data_order_change")


class DataOrderChangeError(UserError):
    """A resume with a config that reads the data in another order or other data."""


class WorkerCountChangeError(UserError):
    """A resume with another Grain worker count than the checkpoint's data position was saved
    with (Grain's iterator state is only valid for its own count)."""


def resolve_worker_counts(config, workdir: str, *, resumes: bool) -> None:
    """Sets each stream's `worker_count` of -1 (sized to the host) to a count, in place, before
    the streams are built: a run that `resumes` keeps the count of the run it continues (its
    config.json; the checkpoint's data position is only valid for that count), a new run takes
    `pipeline.host_worker_count()`. A resume with an explicit other count is refused."""
    from avrl_jax.data import pipeline  # grain: only where streams are built

    path = paths.join(workdir, CONFIG_FILE)
    previous = json.loads(paths.read_text(path)) if resumes and paths.exists(path) else {}
    for section in ("data", "annotation_data"):
        field = f"{section}.worker_count"
        requested = config[section].worker_count
        kept = previous.get(section, {}).get("worker_count")
        if kept is None or kept == pipeline.AUTO_WORKERS:
            kept = None  # a new run (or a config.json written before counts were kept)
        if requested == pipeline.AUTO_WORKERS:
            config[section].worker_count = pipeline.host_worker_count() if kept is None else kept
        elif kept is not None and requested != kept:
            raise WorkerCountChangeError(
                f"resuming {workdir} with {field}={requested}: its checkpoints hold a data "
                f"position saved with {kept} Grain workers, which only {kept} can restore. "
                f"Resume with --config.{field}={kept} (or -1, the run's own count), or start a "
                "new workdir. config.json and the checkpoints are as they were."
            )


def as_json(config) -> dict:
    """The config as config.json holds it (tuples as lists, other values as strings)."""
    return json.loads(json.dumps(config.to_dict(), default=str))


def write_config(config, workdir: str) -> None:
    text = json.dumps(config.to_dict(), indent=2, sort_keys=True, default=str)
    paths.write_atomic(paths.join(workdir, CONFIG_FILE), text)


def _flat(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flat(value, name + "."))
        else:
            flat[name] = value
    return flat


_MISSING = "(absent)"


def changed_fields(previous: dict, current: dict) -> list[tuple[str, object, object]]:
    """(field, previous value, current value) for every dotted field that differs."""
    old, new = _flat(previous), _flat(current)
    return [
        (name, old.get(name, _MISSING), new.get(name, _MISSING))
        for name in sorted(set(old) | set(new))
        if old.get(name, _MISSING) != new.get(name, _MISSING) and name not in PERMISSIONS
    ]


def _is_data_order_field(name: str) -> bool:
    return any(name == field or name.startswith(field + ".") for field in DATA_ORDER_FIELDS)


def check_resume(config, workdir: str, step: int) -> list[tuple[str, object, object]]:
    """The fields in which `config` differs from the config.json of the run resumed at `step`;
    raises DataOrderChangeError for a change of a data-order field without the permission."""
    path = paths.join(workdir, CONFIG_FILE)
    if not paths.exists(path):
        return []
    previous = json.loads(paths.read_text(path))
    changes = changed_fields(previous, as_json(config))
    refused = [change for change in changes if _is_data_order_field(change[0])]
    if refused and not config.checkpoint.get("allow_data_order_change", False):
        listing = ", ".join(f"{name} {old!r} -> {new!r}" for name, old, new in refused)
        raise DataOrderChangeError(
            f"resuming {workdir} at step {step} with {listing}: the resumed run would read the "
            "data in another order (or other data) than the run it continues. Resume with its "
            f"config (--config configs/from_workdir.py:{workdir}), start a new workdir, or pass "
            "--config.checkpoint.allow_data_order_change=True. config.json and the checkpoints "
            "are as they were."
        )
    return changes


def record_resume(workdir: str, step: int, changes: list) -> str | None:
    """Keeps the previous config.json as config.<step>.json (process 0, before the new config is
    written) and logs each change; returns the kept file's path (None without changes)."""
    if not changes:
        return None
    kept = paths.join(workdir, f"config.{step}.json")
    suffix = 1
    while paths.exists(kept):  # resumed at the same step before, with other changes
        kept = paths.join(workdir, f"config.{step}.{suffix}.json")
        suffix += 1
    paths.copyfile(paths.join(workdir, CONFIG_FILE), kept)
    logging.warning(
        "Resuming at step %d with a changed config (the previous one kept as %s): %s",
        step,
        kept,
        "; ".join(f"{name}: {old!r} -> {new!r}" for name, old, new in changes),
    )
    return kept
