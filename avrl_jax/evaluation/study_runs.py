"""The pretraining runs of a study: planning, training configs, training subprocesses, and
what a finished run's workdir says (steps, step time, curves).

Each run is an ordinary training workdir, trained by the ordinary program:
  python -m avrl_jax.main --config <train_config>:<args> --workdir DIR/runs/<name> \
      --config.<field>=<value> ...
one `--config.<field>` flag per override (the study's common overrides, the method's own, the
run's seed). The trainer resumes from its checkpoints, so an unfinished run is finished by
running the same command again; a run is done when its checkpoint of the last step exists
(the trainer writes it, forced, after the last step; a finished run started again restores it
and exits at once).

The study resolves every run's config in-process too (`resolve_train_config`): to reject an
unknown field before hours of training, and to check each run's config.json against it
(`config_difference`), which catches a run started by another study config.
"""

from __future__ import annotations

import dataclasses
import fcntl
import importlib.util
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

import ml_collections

from avrl_jax import config_history

RUNS_DIR = "runs"
LOG_FILE = "train.log"
LOCK_FILE = "train.lock"
WALLCLOCK_SUFFIX = "_wallclock"
# Metrics kept as curves in study.json (whichever a run logs).
CURVE_METRICS = (
    "loss",
    "base/loss",
    "ab/loss",
    "ab/marginal_target_entropy",
    "ab/distinct_argmax",
    "ab/agreement",
)
VALUE_ACCURACY_PREFIX = "ab/value_accuracy/iou_"  # + "LO-HI", objectives.bootstrap.IOU_BINS


class StudyError(RuntimeError):
    """A study cannot go on (a failed run, a config clash); the message says what to do."""


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One pretraining run of the study.

    name: "<method>_s<seed>", its workdir DIR/runs/<name>.
    method: the method's name ("simclr", "ab_simclr", "simclr_wallclock", ...).
    args: the training config's variant args ("dino,base_only").
    overrides: every dotted field -> value the run sets (common, the method's, seed, ...).
    pair: the base method an AB method is compared with ("" for a base method).
    """

    name: str
    method: str
    seed: int
    args: str
    overrides: Mapping[str, Any]
    pair: str = ""

    def workdir(self, study_dir: str) -> str:
        return os.path.join(study_dir, RUNS_DIR, self.name)


def run_name(method: str, seed: int) -> str:
    return f"{method}_s{seed}"


# --------------------------------------------------------------------------------------------
# Training configs.


def load_config_file(path: str, arg: str | None = None) -> ml_collections.ConfigDict:
    """`get_config(arg)` of a config file (a path, as `--config` takes it, without `:arg`)."""
    if not os.path.exists(path):
        raise StudyError(f"config file {path} not found")
    name = "_study_config_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        return module.get_config(arg or None)
    except ValueError as error:  # an unknown variant
        raise StudyError(f"{path}:{arg}: {error}") from None


def flatten_overrides(overrides: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted field -> value; a dict value becomes one override per leaf ("a": {"b": 1} ->
    "a.b": 1), which is how the command line sets it."""
    flat = {}
    for key, value in overrides.items():
        field = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_overrides(value, field + "."))
        else:
            flat[field] = value
    return flat


def apply_overrides(config: ml_collections.ConfigDict, overrides: Mapping[str, Any]) -> None:
    """Sets each dotted field of `config` in place, as `--config.<field>=<value>` would.

    Raises StudyError for a field the config does not have, or one that is an untyped None
    (an override flag cannot set it: its type is unknown; typed placeholders are fine).
    """
    for field, value in flatten_overrides(overrides).items():
        *parents, leaf = field.split(".")
        node = config
        for i, key in enumerate(parents):
            if not isinstance(node, ml_collections.ConfigDict) or key not in node:
                raise StudyError(f"override {field!r}: no field {'.'.join(parents[: i + 1])!r}")
            node = node[key]
        if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
            raise StudyError(f"override {field!r}: the config has no such field")
        if node.get_type(leaf) is type(None):
            raise StudyError(
                f"override {field!r}: the field is an untyped None in the config, which an "
                "override flag cannot set; pick a config variant that gives it a value"
            )
        if isinstance(value, list):
            value = tuple(value)
        node[leaf] = value


def resolve_train_config(train_config: str, args: str, overrides: Mapping[str, Any]):
    """The training config a run trains with: the file's `get_config(args)`, overridden."""
    config = load_config_file(train_config, args)
    apply_overrides(config, overrides)
    return config


def flag_value(value: Any) -> str:
    """A value as an ml_collections override flag parses it back."""
    if isinstance(value, bool | str):
        return str(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "(" + "".join(f"{v!r}, " for v in value) + ")"
    raise StudyError(f"cannot pass {value!r} ({type(value).__name__}) as an override flag")


def override_flags(overrides: Mapping[str, Any]) -> list[str]:
    return [f"--config.{k}={flag_value(v)}" for k, v in flatten_overrides(overrides).items()]


def train_command(spec: RunSpec, train_config: str, workdir: str) -> list[str]:
    config_arg = f"{train_config}:{spec.args}" if spec.args else train_config
    return [
        sys.executable,
        "-m",
        "avrl_jax.main",
        "--config",
        config_arg,
        "--workdir",
        workdir,
        *override_flags(spec.overrides),
    ]


def config_difference(resolved: ml_collections.ConfigDict, workdir: str) -> list[str]:
    """The fields where the run's config.json differs from `resolved` ([] when it agrees or
    the run has not started); the comparison a resuming trainer makes
    (config_history.changed_fields)."""
    path = os.path.join(workdir, config_history.CONFIG_FILE)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        written = json.load(f)
    # A worker count of -1 is resolved by the trainer (and written so); the run keeps its own.
    resolved = resolved.copy_and_resolve_references()
    try:
        config_history.resolve_worker_counts(resolved, workdir, resumes=True)
    except config_history.WorkerCountChangeError:
        pass  # an explicit other count: named below as a difference
    return [
        f"{name}: {run!r} (run) vs {study!r} (study)"
        for name, run, study in config_history.changed_fields(
            written, config_history.as_json(resolved)
        )
    ]


def views_per_step(config) -> int:
    """Views the encoder sees per step: the annotation crops (every crop group of the base
    objective, local crops included) plus, with bootstrapping, the bootstrap views. A base-only
    run (objective.ab_weight == 0) neither loads nor renders nor encodes bootstrap views
    (train.stream_configs, train_step.render_inputs). Passes of the EMA network over the same
    views are not counted: they are the same views."""
    from avrl_jax.objectives.registry import make_objective

    views = int(config.annotation_batch_size) * make_objective(config).crops_per_image()
    if config.objective.ab_weight > 0:
        views += int(config.bootstrap_batch_size) * int(config.env.num_views)
    return views


# --------------------------------------------------------------------------------------------
# Planning.


def plan_runs(study: Mapping[str, Any]) -> list[RunSpec]:
    """The grid: every method x seed, seed by seed (wall-clock-matched runs are added once
    their partners exist: `wallclock_spec`)."""
    methods = {m["name"]: m for m in study["methods"]}
    if len(methods) != len(study["methods"]):
        raise StudyError("configs: method names must be unique")
    for m in study["methods"]:
        if m.get("pair") and methods.get(m["pair"], {}).get("pair", "x") != "":
            raise StudyError(
                f"method {m['name']!r}: pair={m['pair']!r} must name a base method (pair '') "
                "of the study"
            )
    for base in study["wallclock_matched"]:
        if base not in methods or not ab_partner(study, base):
            raise StudyError(f"wallclock_matched: {base!r} is not a base method with an AB pair")
    return [
        RunSpec(
            name=run_name(m["name"], seed),
            method=m["name"],
            seed=int(seed),
            args=m["args"],
            overrides={
                **study["common_overrides"],
                **m.get("overrides", {}),
                "seed": int(seed),
            },
            pair=m.get("pair", ""),
        )
        for seed in study["seeds"]
        for m in study["methods"]
    ]


def ab_partner(study: Mapping[str, Any], base: str) -> str | None:
    """The first AB method paired with `base`, or None."""
    return next((m["name"] for m in study["methods"] if m.get("pair") == base), None)


def wallclock_steps(ab_steps: int, ab_step_time: float, base_step_time: float) -> int:
    """Steps of the base method that take the AB run's training time:
    round(ab_steps * ab_step_time / base_step_time), at least 1."""
    if not (ab_step_time > 0 and base_step_time > 0):
        raise ValueError(f"step times must be > 0, got {ab_step_time}, {base_step_time}")
    return max(1, round(ab_steps * ab_step_time / base_step_time))


def wallclock_spec(base: RunSpec, total_steps: int) -> RunSpec:
    """`<base>_wallclock`: the base run's method trained for `total_steps` steps."""
    method = base.method + WALLCLOCK_SUFFIX
    return RunSpec(
        name=run_name(method, base.seed),
        method=method,
        seed=base.seed,
        args=base.args,
        overrides={**base.overrides, "total_steps": int(total_steps)},
        pair="",
    )


# --------------------------------------------------------------------------------------------
# A run's workdir.


def read_records(workdir: str) -> list[dict]:
    """metrics.jsonl: the last record per step (a resumed run rewrites steps), by step; "nan"
    strings (how the writer stores non-finite values) become NaN."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    by_step = {}
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
                by_step[int(record["step"])] = record
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a crash
    parse = lambda v: float(v) if isinstance(v, str) else v
    return [{k: parse(v) for k, v in by_step[s].items()} for s in sorted(by_step)]


def step_time(records: list[dict]) -> float:
    """Seconds per training step: the median over the logging windows after the first (which
    holds compilation) of 1 / perf/steps_per_sec; with one window, that window's."""
    rates = [r["perf/steps_per_sec"] for r in records if r.get("perf/steps_per_sec")]
    if not rates:
        raise StudyError("no perf/steps_per_sec in metrics.jsonl")
    rates = rates[1:] or rates
    return statistics.median(1.0 / rate for rate in rates)


def checkpoint_steps(workdir: str) -> list[int]:
    """Steps of the run's finalised checkpoints (Orbax writes a step into a temporary folder
    and renames it to the bare step number when it is complete)."""
    directory = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(directory):
        return []
    return sorted(int(n) for n in os.listdir(directory) if n.isdigit())


def is_done(workdir: str, total_steps: int) -> bool:
    """Whether the run has its final checkpoint (and the record of its last step)."""
    records = read_records(workdir)
    return (
        total_steps in checkpoint_steps(workdir)
        and bool(records)
        and records[-1]["step"] == total_steps
    )


def curves(records: list[dict]) -> dict[str, list]:
    """{metric: [[step, value or None], ...]} of CURVE_METRICS and the value accuracy bins."""
    names = [
        name
        for name in dict.fromkeys(k for r in records for k in r)
        if name in CURVE_METRICS or name.startswith(VALUE_ACCURACY_PREFIX)
    ]
    finite = lambda v: v if isinstance(v, int | float) and math.isfinite(v) else None
    return {
        name: [[r["step"], finite(r.get(name))] for r in records if name in r] for name in names
    }


# --------------------------------------------------------------------------------------------
# Training.


def _tail(path: str, lines: int = 20) -> str:
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])


def train(
    spec: RunSpec, train_config: str, study_dir: str, total_steps: int, env=None
) -> float | None:
    """Trains (or finishes) the run in its workdir; returns the seconds it took, or None when
    the run turned out to be done already (another process finished it).

    Output goes to the run's train.log (appended). The run's lock file is held while it trains,
    by this process and by the trainer (it inherits the descriptor), so a study restarted
    while an orphaned trainer of a killed study still runs waits for it instead of training
    the same workdir twice. Raises StudyError naming the run and its log on failure.
    """
    workdir = spec.workdir(study_dir)
    os.makedirs(workdir, exist_ok=True)
    log_path = os.path.join(workdir, LOG_FILE)
    with open(os.path.join(workdir, LOCK_FILE), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"study: {spec.name} is being trained by another process; waiting", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        if is_done(workdir, total_steps):
            return None
        command = train_command(spec, train_config, workdir)
        start = time.perf_counter()
        with open(log_path, "a") as log:
            log.write(f"\n=== study {time.strftime('%Y-%m-%d %H:%M:%S')}: {shlex.join(command)}\n")
            log.flush()
            returncode = subprocess.call(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                pass_fds=(lock.fileno(),),
            )
    seconds = time.perf_counter() - start
    if returncode != 0 or not is_done(workdir, total_steps):
        what = f"exited with status {returncode}" if returncode else "stopped before its end"
        raise StudyError(
            f"study: run {spec.name} {what}; its log is {log_path}. Last 20 lines:\n"
            + _tail(log_path)
        )
    return seconds
