"""Rendering a box of an image to a view, and the network's input normalisation.

Crop + resize is two separable interpolation-weight matrices, rows f32[out, H] and columns
f32[out, W], applied with einsums. Matmuls are what TPUs do fast, there are no gathers, the
shapes are static whatever the box, and a vmap over boxes becomes a batched matmul.

Views are f32 in [0, 1] until `normalize`, which maps them to the network's input scale.
"""

import jax
import jax.numpy as jnp

# The network's input normalisation: (x - 0.5) / 0.25 maps [0, 1] to [-2, 2]; natural images
# (mean ~0.45, std ~0.25 per channel) come out roughly zero-mean with unit scale. Dataset-agnostic
# on purpose: the corpora here range from MNIST digits to photos. Every image that enters the
# network (views, annotation crops, probe inputs) must go through `normalize`.
NORM_MEAN = 0.5
NORM_STD = 0.25


def _interp_weights(
    start: jax.Array, end: jax.Array, in_size: int, out_size: int, antialias: bool
) -> jax.Array:
    """Interpolation weights that resample the span [start, end] of one image axis.

    Args:
      start, end: f32[] the span in normalised coordinates (may leave [0, 1]).
      in_size: the axis's length in pixels (static).
      out_size: the number of output samples (static).
      antialias: widen the triangle kernel by the downscale factor (a low-pass filter).

    Returns:
      f32[out_size, in_size], each row non-negative and summing to 1.
    """
    out = jnp.arange(out_size, dtype=jnp.float32)
    t = start + (out + 0.5) / out_size * (end - start)  # sample points, normalised coords
    # Pixel p's centre is at (p + 0.5) / in_size. Samples outside the image take the edge
    # pixel's value (the image extends by repeating its edges): clamp the sample point to the
    # first and last pixel centres and use the plain bilinear kernel there, which puts all the
    # weight on the edge pixel. Inside the image nothing changes, so renders of boxes inside
    # the image match jax.image.resize.
    raw = t * in_size - 0.5  # [out]
    pos = jnp.clip(raw, 0.0, in_size - 1.0)
    # Input pixels per output pixel; when downscaling the kernel widens by it (antialias: a
    # low-pass filter), as in jax.image.resize. It never shrinks below bilinear (upscaling).
    support = jnp.ones_like(pos)
    if antialias:
        downscale = jnp.maximum(jnp.abs(end - start) * in_size / out_size, 1.0)
        support = jnp.where(raw == pos, downscale, 1.0)
    pixels = jnp.arange(in_size, dtype=jnp.float32)
    weights = jnp.maximum(0.0, 1.0 - jnp.abs(pixels[None, :] - pos[:, None]) / support[:, None])
    # The pixel nearest to `pos` is within half a pixel and support >= 1, so each row's sum is
    # at least 0.5: the division is safe. Normalising over in-range pixels only is how the
    # kernel handles the image border (the part of the kernel outside the image is dropped).
    return weights / jnp.sum(weights, axis=1, keepdims=True)


def render(
    image: jax.Array,
    box: jax.Array,
    out_size: int,
    antialias: bool = True,
    precision: jax.lax.PrecisionLike = jax.lax.Precision.HIGHEST,
) -> jax.Array:
    """Crops `box` out of `image` and resizes it to out_size x out_size (bilinear).

    Output pixel o samples the image at t = y_min + (o + 0.5) / out * (y_max - y_min) (likewise
    for x), pixel coordinate t * H - 0.5, with a triangle kernel; with `antialias` the kernel
    widens by the downscale factor max(1, box_h * H / out) and each output's weights are
    normalised to sum to 1 over the pixels inside the image, like jax.image.resize(..., "linear",
    antialias=True). Samples outside the image take the value of the nearest edge pixel.

    Args:
      image: uint8[H, W, 3] (or float in [0, 1]).
      box: f32[4] = (y_min, x_min, y_max, x_max) in normalised coordinates.
      out_size: the view's side in pixels (static).
      antialias: low-pass filter when downscaling.
      precision: matmul precision. HIGHEST keeps f32 accuracy on TPU (its default precision
        rounds the weights to bf16, about one intensity level of error); the resampling costs
        well under the encoder's compute either way.

    Returns:
      f32[out_size, out_size, 3] in [0, 1].
    """
    height, width = image.shape[0], image.shape[1]
    rows = _interp_weights(box[0], box[2], height, out_size, antialias)  # [out, H]
    cols = _interp_weights(box[1], box[3], width, out_size, antialias)  # [out, W]
    pixels = image.astype(jnp.float32)
    if image.dtype == jnp.uint8:
        # Fold the 1/255 into the (smaller) row weights instead of scaling the image.
        rows = rows / 255.0
    # Rows first: it shrinks the larger operand (H -> out) before the second contraction.
    view = jnp.einsum("oh,hwc->owc", rows, pixels, precision=precision)
    view = jnp.einsum("pw,owc->opc", cols, view, precision=precision)
    # The weights are convex, so this only removes float round-off.
    return jnp.clip(view, 0.0, 1.0)


def normalize(view: jax.Array) -> jax.Array:
    """Maps a view in [0, 1] to the network's input scale: (x - 0.5) / 0.25, in [-2, 2]."""
    return (view - NORM_MEAN) / NORM_STD


def denormalize(view: jax.Array) -> jax.Array:
    """The inverse of `normalize` (for looking at views)."""
    return view * NORM_STD + NORM_MEAN
