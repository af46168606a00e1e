"""Image augmentations of one view, as in SimCLR / BYOL / DINO, as pure `jax.random` functions.

Views are f32[h, w, 3] in [0, 1]; every op maps a view to a view in [0, 1] with the same shape,
has no Python control flow on traced values, and so works under jit and vmap.

- flip: mirror left-right (the caller gets the flag, since it changes the geometry of actions).
- colour jitter (torchvision ColorJitter): brightness x * f; contrast, a blend with the mean
  luma; saturation, a blend with the per-pixel luma; hue, a rotation of the HSV hue by a shift
  in turns. Factors are uniform in [max(0, 1 - s), 1 + s], the hue shift in [-hue, hue], and the
  four ops run in a random order on each call.
- grayscale: the BT.601 luma (0.299, 0.587, 0.114) in all three channels.
- Gaussian blur: separable, sigma in pixels of the view, reflect padding (torchvision).
- solarisation: pixels >= threshold become 1 - x.

The defaults are the DINO / BYOL values: jitter with p 0.8 of brightness 0.4, contrast 0.4,
saturation 0.2, hue 0.1; grayscale p 0.2. Blur and solarisation probabilities are set per crop
group, so they default to off: DINO blurs the first global crop with p 1.0, the second with 0.1
and the local crops with 0.5, and solarises the second global crop with p 0.2.
"""

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

# ITU-R BT.601 luma weights, as torchvision and PIL use for grayscale.
_LUMA = (0.299, 0.587, 0.114)
_PROBS = ("flip_prob", "jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob")


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Augmentation settings. Frozen and hashable, so usable as a static jit argument.

    Probabilities are per view; jitter strengths follow torchvision's ColorJitter; blur_sigma is
    the (lo, hi) range of the blur's sigma in pixels of the rendered view.
    """

    flip_prob: float = 0.5
    jitter_prob: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_prob: float = 0.2
    blur_prob: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_prob: float = 0.0
    solarize_threshold: float = 0.5

    def __post_init__(self):
        # Configs hand over lists and ints (ml_collections, JSON); tuples of floats keep the
        # dataclass hashable and equal configs equal.
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            value = tuple(map(float, value)) if field.name == "blur_sigma" else float(value)
            object.__setattr__(self, field.name, value)
        limits = {name: (0.0, 1.0) for name in _PROBS} | {"hue": (0.0, 0.5)}
        limits |= {name: (0.0, math.inf) for name in ("brightness", "contrast", "saturation")}
        for name, (lo, hi) in limits.items():
            if not lo <= getattr(self, name) <= hi:
                raise ValueError(f"{name} must be in [{lo}, {hi}], got {getattr(self, name)}")
        if len(self.blur_sigma) != 2 or not 0.0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError(
                f"blur_sigma must be (lo, hi) with 0 < lo <= hi, got {self.blur_sigma}"
            )

    @classmethod
    def none(cls) -> "Augmentation":
        """No augmentation at all (the bootstrap views' random-resized crop only)."""
        return cls(flip_prob=0.0, jitter_prob=0.0, grayscale_prob=0.0)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Augmentation":
        """From a dict or ConfigDict holding any subset of the fields (the rest keep defaults)."""
        config = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        valid = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(config) - set(valid))
        if unknown:
            raise ValueError(f"unknown augmentation keys {unknown}; valid keys are {valid}")
        return cls(**config)


def flip_left_right(view: jax.Array) -> jax.Array:
    """Mirrors a view horizontally: f32[h, w, c] -> f32[h, w, c]."""
    return view[:, ::-1, :]


def grayscale(view: jax.Array) -> jax.Array:
    """f32[h, w, 3] -> f32[h, w, 3]: the luma in all three channels."""
    luma = jnp.clip(view @ jnp.asarray(_LUMA, view.dtype), 0.0, 1.0)  # weights sum to 1 +- ulp
    return jnp.broadcast_to(luma[..., None], view.shape)


def adjust_brightness(view: jax.Array, factor: jax.Array | float) -> jax.Array:
    """x * factor, clipped to [0, 1]. f32[h, w, 3] -> f32[h, w, 3]."""
    return jnp.clip(view * factor, 0.0, 1.0)


def _blend(view: jax.Array, other: jax.Array, factor: jax.Array | float) -> jax.Array:
    # x * f + other * (1 - f): f = 1 gives x bit-exactly (other * 0 adds an exact zero).
    return jnp.clip(view * factor + other * (1.0 - factor), 0.0, 1.0)


def adjust_contrast(view: jax.Array, factor: jax.Array | float) -> jax.Array:
    """Blends with the mean luma of the whole view (torchvision). f32[h, w, 3] -> same."""
    return _blend(view, jnp.mean(grayscale(view)), factor)


def adjust_saturation(view: jax.Array, factor: jax.Array | float) -> jax.Array:
    """Blends with the per-pixel luma (torchvision). f32[h, w, 3] -> same."""
    return _blend(view, grayscale(view), factor)


def rgb_to_hsv(rgb: jax.Array) -> jax.Array:
    """f32[..., 3] RGB in [0, 1] -> f32[..., 3] (hue in [0, 1] turns, saturation, value)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    maxc, minc = jnp.max(rgb, axis=-1), jnp.min(rgb, axis=-1)
    delta = maxc - minc
    # Gray pixels (delta = 0) get hue 0 and saturation 0; the safe divisor avoids 0 / 0.
    safe = jnp.where(delta == 0.0, 1.0, delta)
    sat = delta / jnp.where(delta == 0.0, 1.0, maxc)
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    hue = jnp.where(maxc == r, bc - gc, jnp.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    return jnp.stack([(hue / 6.0) % 1.0, sat, maxc], axis=-1)


def hsv_to_rgb(hsv: jax.Array) -> jax.Array:
    """f32[..., 3] (hue in turns, saturation, value) -> f32[..., 3] RGB."""
    hue, sat, val = hsv[..., 0:1], hsv[..., 1:2], hsv[..., 2:3]
    # The closed form of the six-sector formula (as torchvision's _hsv2rgb computes it by
    # cases): channel n drops from v by v * s * clip(min(k, 4 - k), 0, 1), k = (n + 6 h) mod 6.
    k = (jnp.asarray([5.0, 3.0, 1.0], hsv.dtype) + 6.0 * hue) % 6.0
    return val - val * sat * jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)


def adjust_hue(view: jax.Array, shift: jax.Array | float) -> jax.Array:
    """Rotates the hue by `shift` turns, in [-0.5, 0.5], through HSV. f32[h, w, 3] -> same."""
    hsv = rgb_to_hsv(view)
    hsv = hsv.at[..., 0].set((hsv[..., 0] + shift) % 1.0)
    rotated = jnp.clip(hsv_to_rgb(hsv), 0.0, 1.0)
    # The HSV round trip is exact only up to round-off; a zero shift keeps the view bit-exactly.
    return jnp.where(shift == 0.0, view, rotated)


def gaussian_blur(view: jax.Array, sigma: jax.Array | float, radius: int) -> jax.Array:
    """Separable Gaussian blur with reflect padding (as torchvision's gaussian_blur).

    Args:
      view: f32[h, w, 3] in [0, 1].
      sigma: f32[] in pixels (may be traced).
      radius: the kernel's half-width, static (the kernel has 2 * radius + 1 taps); use
        max(1, ceil(3 * max_sigma)) so the truncated tails hold < 0.3% of the weight.

    Returns:
      f32[h, w, 3] in [0, 1].
    """
    taps = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
    weights = jnp.exp(-(taps**2) / (2.0 * jnp.square(sigma)))
    weights = weights / jnp.sum(weights)
    for axis in (0, 1):
        pad = [(0, 0)] * view.ndim
        pad[axis] = (radius, radius)
        padded = jnp.pad(view, pad, mode="reflect")
        size = view.shape[axis]
        # Static slices: the shapes are fixed whatever sigma is, so this is vmap- and jit-safe.
        view = sum(
            weights[i] * jax.lax.slice_in_dim(padded, i, i + size, axis=axis)
            for i in range(2 * radius + 1)
        )
    return jnp.clip(view, 0.0, 1.0)


def solarize(view: jax.Array, threshold: jax.Array | float) -> jax.Array:
    """Pixels >= threshold become 1 - x. f32[h, w, 3] -> f32[h, w, 3]."""
    return jnp.where(view >= threshold, 1.0 - view, view)


_JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def _sample_jitter(key: jax.Array, aug: Augmentation) -> tuple[jax.Array, jax.Array]:
    """The random part of `color_jitter`.

    Returns:
      (order int32[n]: the ids (0 brightness, 1 contrast, 2 saturation, 3 hue) of the n ops with
      a non-zero strength, in the order they are applied; factors f32[4], one per op id).
    """
    k_order, k_factors = jax.random.split(key)
    strengths = (aug.brightness, aug.contrast, aug.saturation)
    lo = jnp.asarray([max(0.0, 1.0 - s) for s in strengths] + [-aug.hue])
    hi = jnp.asarray([1.0 + s for s in strengths] + [aug.hue])
    factors = jax.random.uniform(k_factors, (4,), minval=lo, maxval=hi)
    enabled = [i for i, s in enumerate((*strengths, aug.hue)) if s > 0.0]
    order = jax.random.permutation(k_order, jnp.asarray(enabled, jnp.int32))
    return order, factors


def color_jitter(key: jax.Array, view: jax.Array, aug: Augmentation) -> jax.Array:
    """torchvision ColorJitter: random brightness, contrast, saturation, hue, in random order.

    An op whose strength is 0 is left out (statically), so it is the identity bit-exactly.

    Args:
      key: a PRNG key.
      view: f32[h, w, 3] in [0, 1].
      aug: the strengths (static).

    Returns:
      f32[h, w, 3] in [0, 1].
    """
    order, factors = _sample_jitter(key, aug)
    # Disabled ops are identity branches: never chosen, and free when vmap runs every branch.
    strengths = (aug.brightness, aug.contrast, aug.saturation, aug.hue)
    branches = [
        (lambda v, f, i=i, op=op: op(v, f[i])) if s > 0.0 else (lambda v, f: v)
        for i, (op, s) in enumerate(zip(_JITTER_OPS, strengths, strict=True))
    ]
    for step in range(order.shape[0]):  # static: the number of enabled ops
        view = jax.lax.switch(order[step], branches, view, factors)
    return view


def augment_view(key: jax.Array, view: jax.Array, aug: Augmentation) -> tuple[jax.Array, jax.Array]:
    """Flip, colour jitter, grayscale, Gaussian blur, solarisation, each with its probability.

    An op with probability exactly 0 is not traced at all, so with every probability 0 the view
    comes back bit-exactly. Each decision has its own key, always split the same way, so turning
    one op off does not change the randomness of the others.

    Args:
      key: a PRNG key.
      view: f32[h, w, 3] in [0, 1].
      aug: the settings (static).

    Returns:
      (view f32[h, w, 3] in [0, 1], flipped bool[]).
    """
    keys = jax.random.split(key, 7)
    flipped = jnp.zeros((), bool)
    if aug.flip_prob > 0.0:
        flipped = jax.random.bernoulli(keys[0], aug.flip_prob)
        view = jnp.where(flipped, flip_left_right(view), view)
    if aug.jitter_prob > 0.0:
        jittered = color_jitter(keys[2], view, aug)
        view = jnp.where(jax.random.bernoulli(keys[1], aug.jitter_prob), jittered, view)
    if aug.grayscale_prob > 0.0:
        view = jnp.where(jax.random.bernoulli(keys[3], aug.grayscale_prob), grayscale(view), view)
    if aug.blur_prob > 0.0:
        lo, hi = aug.blur_sigma
        sigma = jax.random.uniform(keys[5], minval=lo, maxval=hi)
        blurred = gaussian_blur(view, sigma, radius=max(1, math.ceil(3.0 * hi)))
        view = jnp.where(jax.random.bernoulli(keys[4], aug.blur_prob), blurred, view)
    if aug.solarize_prob > 0.0:
        solarized = solarize(view, aug.solarize_threshold)
        view = jnp.where(jax.random.bernoulli(keys[6], aug.solarize_prob), solarized, view)
    return view, flipped


def strength_jitter(key: jax.Array, view: jax.Array, strength: jax.Array | float) -> jax.Array:
    """The bootstrap views' colour jitter, of a (traced) strength s: brightness, contrast and
    saturation factors uniform in [max(0, 1 - 0.8 s), 1 + 0.8 s], in that fixed order (SimCLR's
    jitter without hue). s = 0 returns the view bit-exactly.

    The strength is an action of the agent (the jitter token, `env.jitter_strength`), so it is
    a value, not a static setting. f32[h, w, 3] in [0, 1] -> same.
    """
    factors = jax.random.uniform(key, (3,), minval=-1.0, maxval=1.0)
    factors = jnp.maximum(1.0 + 0.8 * strength * factors, 0.0)
    view = adjust_brightness(view, factors[0])
    view = adjust_contrast(view, factors[1])
    return adjust_saturation(view, factors[2])


def flip_and_jitter(
    key: jax.Array, view: jax.Array, flip_prob: float, jitter_strength: jax.Array | float
) -> tuple[jax.Array, jax.Array]:
    """A bootstrap view's augmentation: random horizontal flip, then `strength_jitter`.

    Returns (view f32[h, w, 3] in [0, 1], flipped bool[]).
    """
    k_flip, k_jitter = jax.random.split(key)
    flipped = jax.random.bernoulli(k_flip, flip_prob)
    view = jnp.where(flipped, flip_left_right(view), view)
    return strength_jitter(k_jitter, view, jitter_strength), flipped
