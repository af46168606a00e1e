"""Probing a study's encoders and pixel baselines, in-process.

Each probe task is rendered once per encoder input size (`ProbeTasks.data`) and reused for
every encoder of that size (pretrained runs, random initialisations) and for the pixel
baselines. Results are split into metrics (what the study compares, deterministic) and
timings (`time/*`, kept apart in study.json).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from avrl_jax.checkpointing import restore_params
from avrl_jax.evaluation import pixels, probe_runner, tasks
from avrl_jax.evaluation.study_runs import StudyError, apply_overrides, load_config_file
from avrl_jax.models.build import build_encoder

TIMING_PREFIX = "time/"


def load_probe_config(entry: Mapping[str, Any]):
    """A study's probe entry {"name", "config": "configs/probe_*.py[:arg]", "overrides"} as its
    probe config, the overrides applied."""
    path, _, arg = entry["config"].partition(":")
    config = load_config_file(path, arg)
    try:
        apply_overrides(config, entry.get("overrides", {}))
    except StudyError as error:
        raise StudyError(f"probe {entry['name']!r}: {error}") from None
    return config


def split_timings(results: Mapping[str, float]) -> tuple[dict, dict]:
    """(metrics, timings) of a probe's flat results: "time/*" entries go to timings."""
    metrics = {k: v for k, v in results.items() if not k.startswith(TIMING_PREFIX)}
    timings = {k: v for k, v in results.items() if k.startswith(TIMING_PREFIX)}
    return metrics, timings


class ProbeTasks:
    """The study's probe tasks, each rendered once per encoder input size."""

    def __init__(self, entries: Sequence[Mapping[str, Any]]):
        self.configs = {entry["name"]: load_probe_config(entry) for entry in entries}
        self._data: dict[tuple[str, int], dict] = {}

    @property
    def names(self) -> list[str]:
        return list(self.configs)

    def data(self, task: str, train_config) -> dict:
        """`probe_runner.task_data` of the task at the encoder's input size (rendered once)."""
        key = (task, int(train_config.env.view_size))
        if key not in self._data:
            self._data[key] = probe_runner.task_data(train_config, self.configs[task])
        return self._data[key]

    def num_classes(self, task: str, train_config) -> int:
        size = int(train_config.env.view_size)
        return tasks.make_split(self.configs[task].task, "train", size).num_classes


def probe_encoder(encoder, train_config, probe_tasks: ProbeTasks, task: str):
    """(metrics, timings) of every enabled probe of `task` on an encoder (graphdef, params)."""
    graphdef, params = encoder
    results = probe_runner.run_probes(
        graphdef,
        params,
        train_config,
        probe_tasks.configs[task],
        probe_tasks.data(task, train_config),
    )
    return split_timings(results)


def probe_pixel_baseline(name: str, train_config, probe_tasks: ProbeTasks, task: str):
    """(metrics, timings) of the linear and kNN probes on pixel features `name`, at the
    encoders' input size (`train_config.env.view_size`)."""
    results = pixels.probe_pixels(
        name,
        probe_tasks.data(task, train_config),
        probe_tasks.num_classes(task, train_config),
        probe_tasks.configs[task],
    )
    return split_timings(results)


def pretrained_encoder(workdir: str, train_config, total_steps: int):
    """(graphdef, params) of the run's encoder at its final checkpoint."""
    graphdef, _ = build_encoder(train_config)
    step, params = restore_params(workdir)
    if step != total_steps:
        raise StudyError(f"{workdir}: latest checkpoint is step {step}, not {total_steps}")
    return graphdef, params


def random_encoder(train_config, seed: int):
    """(graphdef, params) of the run's encoder as initialised with `seed` (its step 0)."""
    return build_encoder(train_config, seed)
