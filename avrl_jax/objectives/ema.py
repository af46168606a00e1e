"""The EMA target network: momentum schedule and parameter update."""

import jax
import jax.numpy as jnp

EMA_SCHEDULES = ("constant", "cosine")


def ema_momentum(
    step: jax.Array, *, base: float, final: float, total_steps: int, schedule: str
) -> jax.Array:
    """Momentum at `step`: constant `base`, or cosine from `base` (step 0) to `final` (last step).

    DINO-style: the target moves less and less as training ends.
    """
    if schedule == "constant":
        return jnp.asarray(base, jnp.float32)
    if schedule != "cosine":
        raise ValueError(f"ema.schedule={schedule!r} is not valid; choose one of {EMA_SCHEDULES}")
    progress = jnp.clip(step / max(total_steps - 1, 1), 0.0, 1.0)
    return final - (final - base) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))


def ema_update(target, online, momentum: jax.Array):
    """target <- momentum * target + (1 - momentum) * online, leaf by leaf."""
    return jax.tree.map(lambda t, o: momentum * t + (1.0 - momentum) * o, target, online)
