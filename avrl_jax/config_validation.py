"""Checks a training config at start, so a bad value fails before any compilation or data read.

Every error names the config field, the value and the valid choices.
"""

from avrl_jax.data.pipeline import SOURCES
from avrl_jax.env.boxes import candidate_grid
from avrl_jax.env.tokens import ActionBins
from avrl_jax.models.vit import DTYPES, VIT_SIZES
from avrl_jax.objectives.bootstrap import DIVERGENCES, NEXT_ACTIONS
from avrl_jax.objectives.ema import EMA_SCHEDULES
from avrl_jax.objectives.registry import BASE_OBJECTIVES, make_objective
from avrl_jax.objectives.simclr import SIMCLR_LOSSES


def _choice(field: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{field}={value!r} is not valid; choose one of {tuple(choices)}")


def _positive(field: str, value) -> None:
    if not isinstance(value, int) or value <= 0:
        raise ValueError(f"{field}={value!r} must be a positive integer")


def validate_config(config, *, batch_shards: int, process_count: int = 1) -> None:
    """Raises ValueError on the first bad field. batch_shards: devices the batch is split over."""
    _choice("objective.base", config.objective.base, BASE_OBJECTIVES)
    _choice("objective.divergence", config.objective.divergence, DIVERGENCES)
    _choice("ema.schedule", config.ema.schedule, EMA_SCHEDULES)
    _choice("model.encoder.variant", config.model.encoder.variant, VIT_SIZES)
    _choice("model.encoder.dtype", config.model.encoder.get("dtype", "float32"), DTYPES)
    _choice("data.name", config.data.name, SOURCES)
    if config.annotation_data.name:
        _choice("annotation_data.name", config.annotation_data.name, SOURCES)
    objective = config.objective
    if not 0.0 <= objective.gamma < 1.0:
        raise ValueError(
            f"objective.gamma={objective.gamma!r} must lie in [0, 1) (1 gives targets that "
            "never see a reward)"
        )
    if config.env.num_views < 2:
        raise ValueError(f"env.num_views={config.env.num_views!r} must be at least 2")
    patch = config.model.encoder.patch_size
    if config.env.view_size % patch:
        raise ValueError(
            f"env.view_size={config.env.view_size} is not divisible by "
            f"model.encoder.patch_size={patch}"
        )
    _validate_next_actions(config)
    _choice("objective.simclr.loss", objective.simclr.loss, SIMCLR_LOSSES)
    _validate_crops(config)
    for field in ("total_steps", "log_every", "annotation_batch_size", "bootstrap_batch_size"):
        _positive(field, config[field])
    for field in ("every_steps", "keep"):
        _positive(f"checkpoint.{field}", config.checkpoint[field])
    # The bootstrap stream is not read by a base-only run (objective.ab_weight == 0).
    batches = ("annotation_batch_size",) + (
        ("bootstrap_batch_size",) if config.objective.ab_weight > 0 else ()
    )
    accumulate = config.optimizer.get("accumulate_steps", 1)
    _positive("optimizer.accumulate_steps", accumulate)
    for field in batches:
        size = config[field]
        for divisor, what in (
            (batch_shards, "devices in the batch mesh axes"),
            (process_count, "processes"),
            (accumulate * batch_shards, "micro-batches (optimizer.accumulate_steps) x devices"),
        ):
            if size % divisor:
                raise ValueError(
                    f"{field}={size} is not divisible by the {divisor} {what}; "
                    f"use a multiple of {divisor}"
                )


def _validate_next_actions(config) -> None:
    objective = config.objective
    _choice("objective.next_actions", objective.next_actions, NEXT_ACTIONS)
    if objective.next_actions == "views" and objective.exclude_return and config.env.num_views < 3:
        raise ValueError(
            f"objective.exclude_return=True with objective.next_actions='views' needs "
            f"env.num_views >= 3 (got {config.env.num_views}): with two views the return action "
            "is the only candidate; use more views or next_actions='grid' or 'both'"
        )
    bins = ActionBins(**config.env.bins)
    grid = candidate_grid(objective.grid.centers, objective.grid.sizes)
    ranges = {
        "centers": (grid[:, :2], bins.center_range),
        "sizes": (grid[:, 2:], bins.log_size_range),
    }
    for name, (values, (lo, hi)) in ranges.items():
        if values.min() < lo or values.max() >= hi:
            raise ValueError(
                f"objective.grid.{name}={tuple(objective.grid[name])} leaves the action bins "
                f"(env.bins range ({lo}, {hi}){' of log sizes' if name == 'sizes' else ''}); "
                "candidate actions must fall inside the bins, not be clipped to their edges"
            )


def _validate_crops(config) -> None:
    """Builds the base objective's crop groups, so a bad augmentation or crop size fails now."""
    try:
        groups = make_objective(config).crop_groups()
    except (ValueError, TypeError) as error:
        raise ValueError(f"annotation_crops / objective crops: {error}") from None
    patch = config.model.encoder.patch_size
    for group in groups:
        if group.size % patch:
            raise ValueError(
                f"a crop size of {group.size} px (objective.dino.local_size or env.view_size) "
                f"is not divisible by model.encoder.patch_size={patch}"
            )
    final = config.optimizer.get("final_weight_decay")
    if final is not None and not final >= 0:
        raise ValueError(f"optimizer.final_weight_decay={final!r} must be None or >= 0")
