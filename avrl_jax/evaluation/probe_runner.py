"""Running the frozen-feature probes: extract an encoder's features of a probe task once, run
every enabled probe (linear, MAP, kNN, few-shot ridge), and probe a workdir's checkpoint (or
its random initialisation), recording the results. The CLI is `avrl_jax.probe`.

Library use:
  graphdef, random_params = build_encoder(train_config)   # avrl_jax.models.build
  data = task_data(train_config, probe_config)           # render the task once
  table = {"random_init": run_probes(graphdef, random_params, train_config, probe_config, data),
           "step 500": run_probes(graphdef, params, train_config, probe_config, data)}
  print(format_table(table))                             # avrl_jax.evaluation.probe_results
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
from absl import logging

from avrl_jax import paths
from avrl_jax.checkpointing import PARAMS_CHOICES, restore_params, saved_steps
from avrl_jax.evaluation import features as features_lib
from avrl_jax.evaluation import tasks
from avrl_jax.evaluation.decoder_probe import decoder_probe
from avrl_jax.evaluation.knn import knn_accuracy
from avrl_jax.evaluation.linear_probe import linear_probe
from avrl_jax.evaluation.localise import localise_workdir
from avrl_jax.evaluation.map_probe import map_probe
from avrl_jax.evaluation.probe_results import (
    RANDOM_INIT_KEY,
    format_table,
    merge_results,
    plot_accuracy_by_step,
    sorted_runs,
    write_tensorboard,
)
from avrl_jax.evaluation.ridge import few_shot_accuracy
from avrl_jax.models.build import build_encoder, load_train_config
from avrl_jax.models.vit import vit_config


def _options(section: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in dict(section).items() if k != "enabled"}


@dataclasses.dataclass(frozen=True)
class TaskInfo:
    """What a probe needs to know of its task beyond the features (a tasks.ProbeSplit has the
    same fields)."""

    num_classes: int
    label_names: tuple[str, ...] = ()


# Each probe: (train Features, test Features, the task (TaskInfo or ProbeSplit), its config
# section without `enabled`, seed, the encoder's size) -> metrics.
def _linear(train, test, task, options: dict, seed: int, _) -> dict[str, float]:
    return linear_probe(
        train.pooled,
        train.labels,
        test.pooled,
        test.labels,
        task.num_classes,
        seed=seed,
        **options,
    )


def _map(train, test, task, options: dict, seed: int, encoder_size: dict):
    # Unset sizes follow the encoder's own attention and MLP (as big_vision's MAP head does).
    options = dict(options)
    options["num_heads"] = options["num_heads"] or encoder_size["num_heads"]
    options["mlp_dim"] = options["mlp_dim"] or encoder_size["mlp_dim"]
    return map_probe(
        train.tokens,
        train.labels,
        test.tokens,
        test.labels,
        task.num_classes,
        seed=seed,
        **options,
    )


def _knn(train, test, task, options: dict, seed: int, _) -> dict[str, float]:
    options = dict(options)
    # A k beyond the train set's size becomes the whole train set.
    options["ks"] = tuple(dict.fromkeys(min(k, len(train)) for k in options.pop("k")))
    return knn_accuracy(
        train.pooled, train.labels, test.pooled, test.labels, task.num_classes, **options
    )


def _fewshot(train, test, task, options: dict, seed: int, _) -> dict[str, float]:
    return few_shot_accuracy(
        train.pooled,
        train.labels,
        test.pooled,
        test.labels,
        options["shots"],
        options["l2_regs"],
        seed,
        num_classes=task.num_classes,
    )


def _decoder(train, test, task, options: dict, seed: int, encoder_size: dict):
    # Unset sizes follow the encoder's (width, heads, MLP), as the MAP head's do.
    options = dict(options)
    options["width"] = options["width"] or encoder_size["width"]
    options["num_heads"] = options["num_heads"] or encoder_size["num_heads"]
    options["mlp_dim"] = options["mlp_dim"] or 4 * options["width"]
    return decoder_probe(
        train.tokens,
        train.labels,
        test.tokens,
        test.labels,
        task.label_names,
        seed=seed,
        **options,
    )


# Explicit registry, in the order they run; each reads the probe config section of its name.
PROBES: dict[str, Callable[..., dict[str, float]]] = {
    "linear": _linear,
    "map": _map,
    "knn": _knn,
    "fewshot": _fewshot,
    "decoder": _decoder,
}
# The probes that read patch tokens (the others read the pooled feature).
TOKEN_PROBES = ("map", "decoder")
# The probes that read a list of labels per example (ProbeSplit.is_list_task).
LIST_PROBES = ("decoder",)


def enabled_probes(probe_config) -> list[str]:
    """The probes a probe config enables (a config without a section has it off)."""
    return [name for name in PROBES if name in probe_config and probe_config[name].enabled]


def majority_baseline(train_labels: np.ndarray, test_labels: np.ndarray) -> float:
    """Test accuracy of always answering the commonest train label (or label list)."""
    rows = [tuple(np.atleast_1d(r).tolist()) for r in train_labels]
    values, counts = np.unique(np.asarray(rows), axis=0, return_counts=True)
    commonest = values[counts.argmax()]
    test = np.asarray(test_labels).reshape(len(test_labels), -1)
    return float(np.mean(np.all(test == commonest.reshape(1, -1), axis=1)))


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
    task = splits["train"]
    num_classes = task.num_classes
    probes = enabled_probes(probe_config)
    if task.is_list_task and set(probes) - set(LIST_PROBES):
        wrong = sorted(set(probes) - set(LIST_PROBES))
        raise ValueError(
            f"task {task.task!r} has a list of labels per example, which only the "
            f"{'/'.join(LIST_PROBES)} probe reads; set "
            + ", ".join(f"{name}.enabled=False" for name in wrong)
            + " (configs/probe_decoder.py does)"
        )
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
            keep_tokens=any(name in TOKEN_PROBES for name in probes),
            token_dtype=probe_config.token_dtype,
        )
        for name in tasks.SPLITS
    }
    timings["time/features_s"] = time.perf_counter() - start
    train, test = cached["train"], cached["test"]
    metrics.update(
        num_train=len(train),
        num_test=len(test),
        num_classes=num_classes,
        majority_baseline=majority_baseline(train.labels, test.labels),
    )

    encoder_size = vit_config(train_config.model.encoder.variant)
    for name in probes:
        start = time.perf_counter()
        results = PROBES[name](
            train, test, task, _options(probe_config[name]), probe_config.seed, encoder_size
        )
        metrics.update({f"{name}/{key}": value for key, value in results.items()})
        timings[f"time/{name}_s"] = time.perf_counter() - start
        logging.info("probe %s: %s", name, results)
    return {key: float(value) for key, value in {**metrics, **timings}.items()}


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
    if probe_config.task.name == "localise":  # the value function's own probe (whole network)
        if random_init or params_kind != "online":
            raise ValueError(
                "the localise probe reports its random-init search itself; drop --random_init "
                "and --params"
            )
        step, metrics = localise_workdir(workdir, probe_config, step)
    else:
        train_config = load_train_config(workdir)
        graphdef, params = build_encoder(train_config)
        if random_init:
            key = RANDOM_INIT_KEY
        else:
            subtree = (PARAMS_CHOICES[params_kind], "encoder")
            step, params = restore_params(workdir, step, subtree=subtree)
        which = "randomly initialised" if random_init else f"step-{step} ({params_kind})"
        logging.info("Probing the %s encoder of %s on task %r", which, workdir, probe_config.name)
        metrics = run_probes(graphdef, params, train_config, probe_config)
    if not random_init:
        key = str(step) if params_kind == "online" else f"{step}_{params_kind}"
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
    logdir = paths.join(workdir, "tensorboard", f"probe_{probe_config.name}{suffix}")
    write_tensorboard(logdir, 0 if random_init else step, metrics)
    print(f"Probe task {probe_config.name!r} ({workdir}):")
    print(format_table(sorted_runs(results[probe_config.name])), flush=True)
    return entry


def probe_all_steps(workdir: str, probe_config, *, params_kind: str = "online") -> list[dict]:
    """`probe_workdir` at every saved checkpoint (a run along training: keep them with
    `checkpoint.keep_period`), then a PNG of each accuracy against the step,
    WORKDIR/plots/probe_<task>_steps.png (the random-init result as a dashed line when
    recorded). Returns the entries."""
    steps = saved_steps(workdir)
    if not steps:
        raise FileNotFoundError(f"no checkpoints in {workdir}: train first (--all_steps)")
    entries = [
        probe_workdir(workdir, probe_config, step=step, params_kind=params_kind) for step in steps
    ]
    if jax.process_index() == 0:
        path = plot_accuracy_by_step(workdir, probe_config.name, params_kind)
        print(f"wrote {path}", flush=True)
    return entries
