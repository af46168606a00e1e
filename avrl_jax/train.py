"""The pretraining loop: mesh, input pipeline, model and optimizer, update step, metrics.

`train_and_evaluate(config, workdir)` reads top to bottom; the math lives in `train_step`.
"""

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from clu import parameter_overview
from flax import nnx

from avrl_jax import config_history, paths, sharding, stop_signals, workdir_check, workdir_lock
from avrl_jax.checkpointing import Checkpointer, checkpoint_dir, saved_steps
from avrl_jax.config_validation import validate_config
from avrl_jax.data import pipeline
from avrl_jax.data.bad_records import BadRecordMonitor
from avrl_jax.evaluation.in_loop import FewShotEvaluator
from avrl_jax.metrics_writer import MetricWriter
from avrl_jax.models.bootstrapper import build_model, count_params
from avrl_jax.models.params import to_plain_params
from avrl_jax.objectives.registry import make_objective
from avrl_jax.optimizer import learning_rate_schedule, make_optimizer
from avrl_jax.progress import Progress
from avrl_jax.train_step import TrainState, init_state, make_update_step

# Each stream gets its own shuffle seed so the two batches of a step hold different images.
STREAM_SEED_OFFSETS = {"annotation": 0, "bootstrap": 1}
SHOWN_METRICS = ("loss", "base/loss", "ab/loss")  # on the console; everything goes to files


class NonFiniteLossError(FloatingPointError):
    """Raised when a loss or gradient norm becomes NaN or Inf."""


def stream_configs(config) -> dict[str, tuple]:
    """(data config, global batch size, fields) of each stream the step consumes.

    The annotation batch reads `config.annotation_data` when its name is set (e.g. a curated
    labelled or captioned set), otherwise the same data as bootstrapping, `config.data`.
    """
    annotation_data = config.annotation_data if config.annotation_data.name else config.data
    fields = ("image", "index", *make_objective(config).annotation_fields)
    streams = {"annotation": (annotation_data, config.annotation_batch_size, fields)}
    if config.objective.ab_weight > 0:
        streams["bootstrap"] = (config.data, config.bootstrap_batch_size, ("image", "index"))
    return streams


def make_streams(config) -> dict[str, pipeline.grain.IterDataset]:
    """The annotation and bootstrap streams (per-host slices of their global batches)."""
    return {
        name: pipeline.make_dataset(
            pipeline.make_source(data.name, "train", **data.source_kwargs),
            global_batch_size=size,
            seed=config.seed + STREAM_SEED_OFFSETS[name],
            process_index=jax.process_index(),
            process_count=jax.process_count(),
            worker_count=data.worker_count,
            fields=fields,
        )
        for name, (data, size, fields) in stream_configs(config).items()
    }


@dataclasses.dataclass(frozen=True)
class Trainer:
    """What the loop (and the benchmark) needs: the sharded state and the jitted update."""

    state: TrainState
    update: Callable
    graphdef: nnx.GraphDef
    overview: str
    state_sharding: Any


def shard_state_like(config, mesh, state):
    """The shardings of a (possibly abstract) train state under `config.mesh`'s rules."""
    return sharding.state_shardings(
        state,
        mesh,
        rules=[tuple(rule) for rule in config.mesh.rules],
        min_fsdp_size=config.mesh.fsdp_min_size,
    )


# XLA:CPU's default instruction schedule favours running independent ops at once and keeps more
# of the step's temporaries alive together; the memory-optimised one gave ViT-S/16's forward and
# backward at 224 px 27% less temporary memory in the same time (README "Benchmark").
CPU_COMPILER_OPTIONS = {"xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"}


def update_compiler_options(mesh) -> dict[str, str]:
    """XLA options of the update step's compilation: CPU_COMPILER_OPTIONS on CPU meshes."""
    return dict(CPU_COMPILER_OPTIONS) if mesh.devices.flat[0].platform == "cpu" else {}


def jit_update(config, mesh, graphdef, optimizer, state_sharding) -> Callable:
    """The update step, jitted with explicit shardings; the input state is donated."""
    return jax.jit(
        make_update_step(graphdef, config, optimizer),
        in_shardings=(state_sharding, sharding.batch_sharding(mesh)),
        out_shardings=(state_sharding, sharding.replicated(mesh)),
        donate_argnums=0,
        compiler_options=update_compiler_options(mesh),
    )


def build_trainer(config, mesh) -> Trainer:
    """Model, optimizer, sharded train state and the jitted, sharded update step.

    Parameters, EMA target and optimizer state are replicated, or FSDP-sharded by
    `config.mesh.rules` / `config.mesh.fsdp_min_size` (see `sharding.state_shardings`).
    """
    model = build_model(config, nnx.Rngs(config.seed))
    graphdef, params = to_plain_params(model)
    overview = parameter_overview.get_parameter_overview(params)
    optimizer = make_optimizer(config)
    state = init_state(params, optimizer, config)
    state_sharding = shard_state_like(config, mesh, state)
    return Trainer(
        state=jax.device_put(state, state_sharding),
        update=jit_update(config, mesh, graphdef, optimizer, state_sharding),
        graphdef=graphdef,
        overview=overview,
        state_sharding=state_sharding,
    )


def train_images(config, is_main: bool):
    """The TensorBoard image summaries (avrl_jax.evaluation.train_images), or None when off.
    Drawn by the one process of a single-process run (the value map reads whole parameters)."""
    section = config.get("image_summaries")
    if not section or not section.every_steps or not is_main:
        return None
    if jax.process_count() > 1:
        logging.warning("image_summaries are drawn in single-process runs only; off here.")
        return None
    from avrl_jax.evaluation.train_images import TrainImages

    return TrainImages(config)


def check_finite(window: list[dict], first_step: int) -> None:
    """Raises NonFiniteLossError naming the first step of a window of metrics whose loss or
    gradient norm is NaN/Inf."""
    for offset, metrics in enumerate(window):
        for name in ("loss", "grad_norm"):
            if not np.isfinite(metrics[name]):
                raise NonFiniteLossError(
                    f"{name} became NaN/Inf at step {first_step + offset}; stopping (lower "
                    f"optimizer.learning_rate or check the data)"
                )


def window_means(window: list[dict]) -> dict[str, float]:
    """The mean of each metric over a window of steps, ignoring NaN (empty-bin) entries."""
    means = {}
    for name in window[0]:
        values = np.asarray([float(metrics[name]) for metrics in window])
        finite = values[~np.isnan(values)]
        means[name] = float(finite.mean()) if finite.size else float("nan")
    return means


def train_and_evaluate(config, workdir: str):
    """Pretrains for `config.total_steps` (resuming from `workdir`) and returns the state.
    SIGTERM/SIGINT stop it cleanly at any time (see avrl_jax.stop_signals)."""
    stop = stop_signals.install()  # the entry point installed it already; others get it here
    try:
        # --- Mesh and config checks ---------------------------------------------------------
        mesh = sharding.make_mesh(config.mesh)
        validate_config(
            config, batch_shards=sharding.batch_shards(mesh), process_count=jax.process_count()
        )
        is_main = jax.process_index() == 0
        workdir_check.check_layout(workdir)
        paths.makedirs(workdir)  # a local folder or a bucket's prefix (gs://...)
        # One trainer per workdir, before anything is read or written in it.
        with workdir_lock.hold(workdir, enabled=is_main):
            return _train(config, workdir, mesh, is_main, stop)
    finally:
        stop_signals.uninstall()


def _train(config, workdir: str, mesh, is_main: bool, stop: stop_signals.StopSignal):
    """The run itself (train_and_evaluate has checked the config and holds the workdir).
    Between start-up stages, a signal received stops it (nothing trained, nothing saved)."""
    stop.check_startup()
    # --- Input pipeline ---------------------------------------------------------------------
    # worker_count -1: sized to the host, or the resumed run's count (its data position's).
    config_history.resolve_worker_counts(config, workdir, resumes=bool(saved_steps(workdir)))
    iterators = {name: iter(ds) for name, ds in make_streams(config).items()}
    # Undecodable records are replaced and counted per stream; too many stop the run.
    monitors = {
        name: BadRecordMonitor(data.max_bad_fraction, prefix=f"data/{name}")
        for name, (data, _, _) in stream_configs(config).items()
    }

    stop.check_startup()

    # --- Model, optimizer, sharding and the update step ------------------------------------
    trainer = build_trainer(config, mesh)
    state, update = trainer.state, trainer.update
    schedule = learning_rate_schedule(config)

    # --- Checkpoints: resume model, optimizer, EMA target, RNG and data position -----------
    if is_main:
        workdir_check.remove_unfinished_saves(checkpoint_dir(workdir))
    checkpointer = Checkpointer(
        workdir,
        every_steps=config.checkpoint.every_steps,
        keep=config.checkpoint.keep,
        keep_period=config.checkpoint.get("keep_period"),
        async_save=config.checkpoint.async_save,
    )
    restored = checkpointer.restore_latest(
        state, iterators, allow_fresh_start=config.checkpoint.get("allow_fresh_start", False)
    )
    stop.check_startup()  # before config.json is touched
    changes = []
    if restored is not None:
        state = restored
        logging.info("Resumed from step %d in %s.", int(state.step), checkpointer.directory)
        # Refuses a config that would read other data than the run it resumes.
        changes = config_history.check_resume(config, workdir, int(state.step))
    # Only now: a run refused by the checkpoint or config check leaves the workdir's
    # config.json (the config its checkpoints were written with) as it was.
    if is_main:
        config_history.record_resume(workdir, int(state.step), changes)
        config_history.write_config(config, workdir)
    start_step = int(state.step)
    writer = MetricWriter(
        workdir,
        enabled=is_main,
        resume_step=start_step,
        wandb=config.get("wandb"),
        config=config_history.as_json(config),
    )
    if start_step == 0:
        logging.info("Parameters (%d):\n%s", count_params(state.params), trainer.overview)
        writer.write_text("parameters", f"```\n{trainer.overview}\n```")

    # --- In-loop evaluation: few-shot ridge on frozen features; TensorBoard images ---------
    fewshot = FewShotEvaluator(config) if config.fewshot_eval.every_steps else None
    images = train_images(config, is_main)

    # --- Loop -------------------------------------------------------------------------------
    images_per_step = config.annotation_batch_size + (
        config.bootstrap_batch_size if "bootstrap" in iterators else 0
    )
    progress = Progress(config.total_steps, images_per_step, start_step)
    stop.check_startup()
    window, window_start = [], start_step
    try:
        for step in range(start_step, config.total_steps):
            local = {name: next(it) for name, it in iterators.items()}
            for name, batch in local.items():
                monitors[name].update(batch)  # also drops the bookkeeping fields
            state, metrics = update(state, sharding.global_batch(local, mesh))
            checkpointer.poll()  # a failed background save stops the run here, not a save later
            window.append(metrics)
            done = step + 1
            if step == start_step:  # compiled and computed: the ETA's starting point
                jax.block_until_ready(metrics)
                progress.started(done)
            final = done == config.total_steps
            preempted = stop.received or checkpointer.reached_preemption(done)
            if stop.received:
                logging.warning("Received %s: saving a checkpoint and stopping.", stop.name)
            if done % config.log_every == 0 or final:
                window = jax.device_get(window)
                check_finite(window, window_start + 1)
                # Means over the logging window (steps since the last record), not one noisy
                # step; a bin empty in every step of the window stays NaN.
                scalars = window_means(window)
                scalars["learning_rate"] = float(schedule(done - 1))
                for monitor in monitors.values():
                    if monitor.num_seen:  # sources that can hold bad records
                        scalars.update(monitor.metrics())
                if fewshot and done % config.fewshot_eval.every_steps == 0:
                    scalars.update(fewshot(state.params["encoder"]))
                if images and done % config.image_summaries.every_steps == 0:
                    drawn = images(trainer.graphdef, state.params, local.get("bootstrap"), done)
                    for tag, image in drawn.items():
                        writer.write_image(tag, image, done)
                perf = progress.update(done)
                writer.write_scalars(done, {**scalars, **perf})
                if is_main:
                    shown = {k: scalars[k] for k in SHOWN_METRICS if k in scalars}
                    print(progress.line(done, perf, shown), flush=True)
                window, window_start = [], done
            elif preempted or checkpointer.due(done):
                # A save between logging steps: never write a state that is already NaN/Inf.
                check_finite(jax.device_get(window), window_start + 1)
            checkpointer.save(done, state, iterators, force=preempted or final)
            if preempted:
                logging.warning("Stopped at step %d after saving a checkpoint.", done)
                break
    finally:
        try:
            checkpointer.close()  # the last save completes; a second signal still ends it at once
        finally:
            writer.close()
    return state
