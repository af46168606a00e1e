"""Discretising actions into tokens for the value head's action queries.

Each of the 4 action coordinates (cy, cx, log_h, log_w) is cut into `num_bins` equal bins over
its range; values outside the range fall into the edge bins. Coordinate c's bin b becomes token
id `b + c * num_bins`, so all coordinates share one embedding table of `4 * num_bins` ids and the
coordinate identity is part of the id. Optional extra tokens (the flip token) take ids after
those.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

NUM_COORDS = 4


@dataclasses.dataclass(frozen=True)
class ActionBins:
    """How actions are binned. Frozen and hashable, so usable as a static jit argument.

    Attributes:
      num_bins: bins per coordinate.
      center_range: (lo, hi) range of the target centre (cy, cx) in the source box's frame.
      log_size_range: (lo, hi) range of log(h2 / h1) and log(w2 / w1).
    """

    num_bins: int = 16
    center_range: tuple[float, float] = (-0.5, 1.5)
    log_size_range: tuple[float, float] = (-3.0, 3.0)

    def __post_init__(self):
        # Configs hand over lists (ml_collections, JSON); tuples keep the dataclass hashable.
        object.__setattr__(self, "num_bins", int(self.num_bins))
        object.__setattr__(self, "center_range", tuple(float(v) for v in self.center_range))
        object.__setattr__(self, "log_size_range", tuple(float(v) for v in self.log_size_range))


def _bounds(bins: ActionBins) -> tuple[np.ndarray, np.ndarray]:
    """The per-coordinate (lo, hi) ranges, each f32[4] (static)."""
    lo = np.array([bins.center_range[0]] * 2 + [bins.log_size_range[0]] * 2, np.float32)
    hi = np.array([bins.center_range[1]] * 2 + [bins.log_size_range[1]] * 2, np.float32)
    return lo, hi


def bin_widths(bins: ActionBins) -> np.ndarray:
    """The width of one bin for each coordinate: f32[4] (static)."""
    lo, hi = _bounds(bins)
    return (hi - lo) / bins.num_bins


def vocab_size(bins: ActionBins, with_flip: bool = False, with_jitter: bool = False) -> int:
    """The number of token ids: 4 * num_bins, plus 2 flip ids when `with_flip`, plus num_bins
    jitter-strength ids when `with_jitter`."""
    return (
        NUM_COORDS * bins.num_bins + (2 if with_flip else 0) + (bins.num_bins if with_jitter else 0)
    )


@dataclasses.dataclass(frozen=True)
class ActionTokenLayout:
    """Which tokens an action has: 4 coordinates, then a flip token, then a jitter token."""

    bins: ActionBins
    with_flip: bool = False
    with_jitter: bool = False

    @property
    def vocab_size(self) -> int:
        return vocab_size(self.bins, self.with_flip, self.with_jitter)

    @property
    def tokens_per_action(self) -> int:
        return NUM_COORDS + int(self.with_flip) + int(self.with_jitter)


def action_token_layout(env_config) -> ActionTokenLayout:
    """The layout of a config's `env`: flip and jitter tokens exist when those are on."""
    return ActionTokenLayout(
        bins=ActionBins(**env_config.bins),
        with_flip=env_config.flip_prob > 0,
        with_jitter=env_config.jitter_strength > 0,
    )


def tokenize(action: jax.Array, bins: ActionBins) -> jax.Array:
    """Bins actions into token ids.

    Args:
      action: f32[..., 4] = (cy, cx, log_h, log_w).
      bins: the binning.

    Returns:
      int32[..., 4]: coordinate c's token is its bin index + c * num_bins.
    """
    lo, hi = _bounds(bins)
    width = (hi - lo) / bins.num_bins
    # Clip in float before the cast: out-of-range values go to the edge bins, and a value
    # exactly at `hi` goes to the last bin instead of one past it.
    index = jnp.clip(jnp.floor((action - lo) / width), 0, bins.num_bins - 1).astype(jnp.int32)
    return index + jnp.arange(NUM_COORDS, dtype=jnp.int32) * bins.num_bins


def detokenize(tokens: jax.Array, bins: ActionBins) -> jax.Array:
    """The action at the centre of each token's bin: the inverse of `tokenize` up to binning.

    Args:
      tokens: int32[..., 4] coordinate tokens from `tokenize`.
      bins: the binning.

    Returns:
      f32[..., 4] bin centres.
    """
    lo, hi = _bounds(bins)
    width = (hi - lo) / bins.num_bins
    index = tokens - jnp.arange(NUM_COORDS, dtype=jnp.int32) * bins.num_bins
    return lo + (index.astype(jnp.float32) + 0.5) * width


def flip_token(flipped: jax.Array, bins: ActionBins) -> jax.Array:
    """The extra token saying whether the target view is mirrored relative to the source view.

    Args:
      flipped: bool[...].
      bins: the binning (the flip ids follow the 4 * num_bins coordinate ids).

    Returns:
      int32[...]: 4 * num_bins (not flipped) or 4 * num_bins + 1 (flipped).
    """
    return NUM_COORDS * bins.num_bins + jnp.asarray(flipped).astype(jnp.int32)


def jitter_token(fraction: jax.Array, bins: ActionBins, with_flip: bool) -> jax.Array:
    """The extra token saying how strongly the target view is colour-jittered.

    Args:
      fraction: f32[...] in [0, 1], the target view's jitter strength over `env.jitter_strength`.
      bins: the binning (num_bins strength ids follow the coordinate and flip ids).
      with_flip: whether the 2 flip ids come before the jitter ids.

    Returns:
      int32[...] in [first, first + num_bins), first = 4 * num_bins (+ 2 with flips).
    """
    first = NUM_COORDS * bins.num_bins + (2 if with_flip else 0)
    index = jnp.clip(jnp.floor(fraction * bins.num_bins), 0, bins.num_bins - 1).astype(jnp.int32)
    return first + index


def plain_action_tokens(action: jax.Array, layout: ActionTokenLayout) -> jax.Array:
    """The full tokens of moves without a flip or colour jitter: f32[..., 4] -> int32[..., T]
    (the coordinates' tokens, then "not flipped" and "no jitter" where `layout` has those)."""
    tokens = [tokenize(action, layout.bins)]
    shape = tokens[0].shape[:-1] + (1,)
    if layout.with_flip:
        tokens.append(jnp.full(shape, flip_token(False, layout.bins), jnp.int32))
    if layout.with_jitter:
        jitter = jitter_token(0.0, layout.bins, layout.with_flip)
        tokens.append(jnp.full(shape, jitter, jnp.int32))
    return jnp.concatenate(tokens, axis=-1).astype(jnp.int32)
