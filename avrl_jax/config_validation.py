"""Checks a training config at start, so a bad value fails before any compilation or data read.

Every error names the config field, the value and the valid choices.
"""

from avrl_jax.data.pipeline import SOURCES
from avrl_jax.models.vit import DTYPES, VIT_SIZES
from avrl_jax.objectives.annotators import BASE_OBJECTIVES
from avrl_jax.objectives.bootstrap import DIVERGENCES
from avrl_jax.objectives.ema import EMA_SCHEDULES


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
    if not 0.0 <= config.objective.gamma <= 1.0:
        raise ValueError(f"objective.gamma={config.objective.gamma!r} must lie in [0, 1]")
    if config.env.num_views < 2:
        raise ValueError(f"env.num_views={config.env.num_views!r} must be at least 2")
    patch = config.model.encoder.patch_size
    if config.env.view_size % patch:
        raise ValueError(
            f"env.view_size={config.env.view_size} is not divisible by "
            f"model.encoder.patch_size={patch}"
        )
    for field in ("total_steps", "log_every", "annotation_batch_size", "bootstrap_batch_size"):
        _positive(field, config[field])
    # The bootstrap stream is not read by a base-only run (objective.ab_weight == 0).
    batches = ("annotation_batch_size",) + (
        ("bootstrap_batch_size",) if config.objective.ab_weight > 0 else ()
    )
    for field in batches:
        size = config[field]
        for divisor, what in (
            (batch_shards, "devices in the batch mesh axes"),
            (process_count, "processes"),
        ):
            if size % divisor:
                raise ValueError(
                    f"{field}={size} is not divisible by the {divisor} {what}; "
                    f"use a multiple of {divisor}"
                )
