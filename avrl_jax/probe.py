r"""Frozen-feature probes of a pretrained encoder: linear (with an LR x WD sweep), attention
pooling (MAP), weighted kNN and few-shot ridge regression, on one probe task.

Run:
  python -m avrl_jax.probe --workdir DIR --config configs/probe_objects.py [--step N]
  python -m avrl_jax.probe --workdir DIR --config configs/probe_objects.py --random_init
  python -m avrl_jax.probe --workdir DIR --config configs/probe_objects.py --params ema

It reads DIR/config.json (the pretraining run's config) to rebuild the encoder, restores only
the encoder's parameters from the latest (or step N's) checkpoint, extracts frozen features
once, runs the enabled probes and writes:
- DIR/probe_results.json: {task name: {"<step>" or "random_init": {"step", "encoder", "time",
  "metrics": {...}}}}, merged with what is there (written atomically, under a file lock);
- TensorBoard scalars `probe/<metric>` under DIR/tensorboard/probe_<task> (the random-init
  baseline under DIR/tensorboard/probe_<task>_random_init, at step 0);
and prints every run of the task recorded in the results file side by side.

`--random_init` probes the same architecture randomly initialised with the run's own seed
(`nnx.Rngs(config.seed)`, which is how the pretraining encoder starts): the baseline column.
Library use (no flags are defined unless this module is the program):
  graphdef, random_params = build_encoder(train_config)
  data = task_data(train_config, probe_config)           # render the task once
  table = {"random_init": run_probes(graphdef, random_params, train_config, probe_config, data),
           "step 500": run_probes(graphdef, params, train_config, probe_config, data)}
  print(format_table(table))
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import app, flags, logging
from flax import nnx
from ml_collections import config_flags
from tensorboardX import SummaryWriter

from avrl_jax import cli, console
from avrl_jax.checkpointing import PARAMS_CHOICES, restore_params
from avrl_jax.evaluation import features as features_lib
from avrl_jax.evaluation import tasks
from avrl_jax.evaluation.knn import knn_accuracy
from avrl_jax.evaluation.linear_probe import linear_probe
from avrl_jax.evaluation.map_probe import map_probe
from avrl_jax.evaluation.ridge import few_shot_accuracy
from avrl_jax.models.params import PlainParams, to_plain_params
from avrl_jax.models.vit import ViT, vit_config

RESULTS_FILE = "probe_results.json"
RANDOM_INIT_KEY = "random_init"


# --------------------------------------------------------------------------------------------
# Encoder.


def load_train_config(workdir: str) -> ml_collections.ConfigDict:
    """The pretraining run's resolved config, from WORKDIR/config.json."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: --workdir must be a pretraining run's workdir (it writes "
            "config.json at start)"
        )
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def build_encoder(
    train_config: ml_collections.ConfigDict, seed: int | None = None
) -> tuple[nnx.GraphDef, PlainParams]:
    """(graphdef, plain params) of the run's encoder, randomly initialised.

    With the default seed (the run's `config.seed`) this is the run's own step-0 encoder: the
    pretraining network builds its encoder first from `nnx.Rngs(config.seed)`.
    """
    seed = train_config.seed if seed is None else seed
    encoder = ViT(
        image_size=int(train_config.env.view_size),
        rngs=nnx.Rngs(seed),
        **dict(train_config.model.encoder),
    )
    return to_plain_params(encoder)


# --------------------------------------------------------------------------------------------
# Probes.


def _options(section: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in dict(section).items() if k != "enabled"}


def _linear(train, test, num_classes: int, options: dict, seed: int, _) -> dict[str, float]:
    return linear_probe(
        train.pooled, train.labels, test.pooled, test.labels, num_classes, seed=seed, **options
    )


def _map(train, test, num_classes: int, options: dict, seed: int, encoder_size: dict):
    # Unset sizes follow the encoder's own attention and MLP (as big_vision's MAP head does).
    options = dict(options)
    options["num_heads"] = options["num_heads"] or encoder_size["num_heads"]
    options["mlp_dim"] = options["mlp_dim"] or encoder_size["mlp_dim"]
    return map_probe(
        train.tokens, train.labels, test.tokens, test.labels, num_classes, seed=seed, **options
    )


def _knn(train, test, num_classes: int, options: dict, seed: int, _) -> dict[str, float]:
    options = dict(options)
    # A k beyond the train set's size becomes the whole train set.
    options["ks"] = tuple(dict.fromkeys(min(k, len(train)) for k in options.pop("k")))
    return knn_accuracy(
        train.pooled, train.labels, test.pooled, test.labels, num_classes, **options
    )


def _fewshot(train, test, num_classes: int, options: dict, seed: int, _) -> dict[str, float]:
    return few_shot_accuracy(
        train.pooled,
        train.labels,
        test.pooled,
        test.labels,
        options["shots"],
        options["l2_regs"],
        seed,
        num_classes=num_classes,
    )


# Explicit registry, in the order they run; each reads the probe config section of its name.
PROBES: dict[str, Callable[..., dict[str, float]]] = {
    "linear": _linear,
    "map": _map,
    "knn": _knn,
    "fewshot": _fewshot,
}


def task_data(train_config, probe_config) -> dict[str, tuple]:
    """The probe task's images and labels, rendered once and kept in memory:
    {"train" | "test": (images f32[N, s, s, 3] normalised, labels int32[N])}.

    For probing several encoders (pretrained vs random, or every N steps during pretraining)
    without rendering the task again: pass it to `run_probes(..., data=...)`.
    """
    image_size = int(train_config.env.view_size)
    return {
        split: tasks.materialise(tasks.make_split(probe_config.task, split, image_size))
        for split in tasks.SPLITS
    }


def run_probes(
    encoder_graphdef, encoder_params, train_config, probe_config, data=None
) -> dict[str, float]:
    """Extracts frozen features of the probe task once and runs every enabled probe.

    Args:
      encoder_graphdef, encoder_params: the ViT encoder (`to_plain_params` of it, or
        `build_encoder(train_config)[0]` with restored params).
      train_config: the pretraining config (for the encoder's input size and sizes).
      probe_config: a configs/probe_*.py config.
      data: `task_data(train_config, probe_config)`, to reuse rendered images; None renders
        the task's images while extracting (streamed, never all in memory).

    Returns:
      Flat metrics: "linear/accuracy", "map/accuracy", "knn/accuracy_k20",
      "fewshot/5shot/accuracy", ..., plus "num_train", "num_test", "num_classes",
      "majority_baseline" (the test accuracy of always predicting the commonest train class)
      and "time/<stage>_s" (seconds per stage).
    """
    image_size = int(train_config.env.view_size)
    splits = {s: tasks.make_split(probe_config.task, s, image_size) for s in tasks.SPLITS}
    num_classes = splits["train"].num_classes
    chunks = {
        name: (split.chunks() if data is None else [data[name]]) for name, split in splits.items()
    }
    # Timings go last, so tables and the results file list accuracies first.
    metrics: dict[str, float] = {}
    timings: dict[str, float] = {}

    start = time.perf_counter()
    cached = {
        name: features_lib.extract_labelled(
            (encoder_graphdef, encoder_params),
            chunks[name],
            batch_size=probe_config.batch_size,
            keep_tokens=probe_config.map.enabled,
            token_dtype=probe_config.token_dtype,
        )
        for name in tasks.SPLITS
    }
    timings["time/features_s"] = time.perf_counter() - start
    train, test = cached["train"], cached["test"]
    commonest = np.bincount(train.labels, minlength=num_classes).argmax()
    metrics.update(
        num_train=len(train),
        num_test=len(test),
        num_classes=num_classes,
        majority_baseline=float(np.mean(test.labels == commonest)),
    )

    encoder_size = vit_config(train_config.model.encoder.variant)
    for name, probe in PROBES.items():
        section = probe_config[name]
        if not section.enabled:
            continue
        start = time.perf_counter()
        results = probe(
            train, test, num_classes, _options(section), probe_config.seed, encoder_size
        )
        metrics.update({f"{name}/{key}": value for key, value in results.items()})
        timings[f"time/{name}_s"] = time.perf_counter() - start
        logging.info("probe %s: %s", name, results)
    return {key: float(value) for key, value in {**metrics, **timings}.items()}


# --------------------------------------------------------------------------------------------
# Results.


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


def _sorted_runs(runs: Mapping[str, dict]) -> dict[str, dict]:
    """Result entries with the random-init baseline first, then by step."""
    order = sorted(runs, key=lambda k: (k != RANDOM_INIT_KEY, runs[k].get("step") or 0, k))
    return {k: runs[k]["metrics"] for k in order}


# --------------------------------------------------------------------------------------------
# CLI.


def define_flags() -> dict[str, flags.FlagHolder]:
    """The CLI's flags. Defined only when this module runs as the program, so that the training
    job can import `run_probes` without clashing with its own --config and --workdir."""
    holders = {
        "config": config_flags.DEFINE_config_file(
            "config", None, "Probe config file (configs/probe_*.py).", lock_config=True
        ),
        "workdir": flags.DEFINE_string("workdir", None, "The pretraining run's workdir."),
        "step": flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest)."),
        "params": flags.DEFINE_enum(
            "params", "online", ["online", "ema"], "The online encoder or the EMA/target one."
        ),
        "random_init": flags.DEFINE_bool(
            "random_init", False, "Probe a randomly initialised encoder of the same architecture."
        ),
    }
    flags.mark_flags_as_required(["config", "workdir"])
    return holders


def probe_workdir(
    workdir: str,
    probe_config,
    *,
    step: int | None = None,
    random_init: bool = False,
    params_kind: str = "online",
) -> dict:
    """The CLI's work: restore (or randomly initialise) the run's encoder, probe it, record
    the results (process 0 only), print the task's table. Returns the new entry.

    `params_kind` "ema" probes the EMA/target network's encoder (as DINO reports its teacher);
    its results are keyed "<step>_ema" beside the online encoder's "<step>".
    """
    if params_kind not in PARAMS_CHOICES:
        raise ValueError(
            f"--params={params_kind!r} is not valid; valid choices: {', '.join(PARAMS_CHOICES)}"
        )
    train_config = load_train_config(workdir)
    graphdef, params = build_encoder(train_config)
    if random_init:
        key = RANDOM_INIT_KEY
    else:
        subtree = (PARAMS_CHOICES[params_kind], "encoder")
        step, params = restore_params(workdir, step, subtree=subtree)
        key = str(step) if params_kind == "online" else f"{step}_{params_kind}"
    logging.info("Probing the %s encoder of %s on task %r", key, workdir, probe_config.name)
    metrics = run_probes(graphdef, params, train_config, probe_config)
    entry = {
        "step": None if random_init else step,
        "encoder": RANDOM_INIT_KEY if random_init else "pretrained",
        "params": None if random_init else params_kind,
        "time": time.time(),
        "task": json.loads(json.dumps(probe_config.task.to_dict(), default=str)),
        "metrics": metrics,
    }
    if jax.process_index() != 0:
        return entry
    results = merge_results(workdir, probe_config.name, key, entry)
    suffix = "_random_init" if random_init else ("" if params_kind == "online" else "_ema")
    logdir = os.path.join(workdir, "tensorboard", f"probe_{probe_config.name}{suffix}")
    write_tensorboard(logdir, 0 if random_init else step, metrics)
    print(f"Probe task {probe_config.name!r} ({workdir}):")
    print(format_table(_sorted_runs(results[probe_config.name])), flush=True)
    return entry


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    console.quiet_console()
    console.log_to_file(_FLAGS["workdir"].value, "probe")
    probe_workdir(
        _FLAGS["workdir"].value,
        _FLAGS["config"].value,
        step=_FLAGS["step"].value,
        random_init=_FLAGS["random_init"].value,
        params_kind=_FLAGS["params"].value,
    )


if __name__ == "__main__":
    _FLAGS = define_flags()
    cli.run(main)
