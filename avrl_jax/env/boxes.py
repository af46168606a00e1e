"""Boxes (views of an image) and the relative "move to box" actions between them.

A box is float32 [4] = (y_min, x_min, y_max, x_max) in the image's normalised coordinates:
[0, 1] spans the canvas on each axis.

An action "move from box b1 to box b2" is float32 [4] = (cy, cx, log_h, log_w): the centre of b2
in b1's frame (b1 spans [0, 1]; values may leave [0, 1]) and log(h2 / h1), log(w2 / w1). The
action is invariant to translating or scaling both boxes together, which is what lets one
value head generalise across positions and scales.

Everything here is a pure function of JAX arrays (static shapes, no Python control flow on
traced values), so it runs inside a jitted, vmapped, sharded train step.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np


def sample_views(
    key: jax.Array,
    num_views: int,
    scale: tuple[float, float] = (0.05, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    image_aspect: float = 1.0,
) -> jax.Array:
    """Samples random-resized-crop boxes (Inception-style crops, without rejection sampling).

    The area fraction is uniform in `scale`, the aspect ratio (width / height, in pixels) is
    log-uniform in `ratio`. A side longer than the image is clipped to the image (so large,
    elongated crops lose a little area: the box always stays inside the image), and the position
    is uniform among the positions where the box fits.

    Args:
      key: a PRNG key.
      num_views: n, the number of boxes (static).
      scale: (min, max) fraction of the image's area.
      ratio: (min, max) aspect ratio width / height in pixels.
      image_aspect: the canvas's width / height in pixels (static), so that `ratio` is in
        pixels also on non-square canvases; 1.0 for square canvases.

    Returns:
      boxes f32[n, 4], each (y_min, x_min, y_max, x_max) with 0 <= min < max <= 1.
    """
    k_area, k_ratio, k_y, k_x = jax.random.split(key, 4)
    area = jax.random.uniform(k_area, (num_views,), minval=scale[0], maxval=scale[1])
    log_ratio = jax.random.uniform(
        k_ratio, (num_views,), minval=math.log(ratio[0]), maxval=math.log(ratio[1])
    )
    # Ratio in normalised coordinates: w_norm / h_norm = (w_px / h_px) / (W / H).
    norm_ratio = jnp.exp(log_ratio) / image_aspect
    h = jnp.minimum(jnp.sqrt(area / norm_ratio), 1.0)
    w = jnp.minimum(jnp.sqrt(area * norm_ratio), 1.0)
    y0 = jax.random.uniform(k_y, (num_views,)) * (1.0 - h)
    x0 = jax.random.uniform(k_x, (num_views,)) * (1.0 - w)
    return jnp.stack([y0, x0, y0 + h, x0 + w], axis=-1).astype(jnp.float32)


def relative_action(b1: jax.Array, b2: jax.Array) -> jax.Array:
    """The action that moves from box b1 to box b2.

    Args:
      b1: f32[..., 4] source boxes.
      b2: f32[..., 4] target boxes (broadcastable against b1).

    Returns:
      f32[..., 4] = (cy, cx, log_h, log_w): b2's centre in b1's frame and its log size ratio.
    """
    h1 = b1[..., 2] - b1[..., 0]
    w1 = b1[..., 3] - b1[..., 1]
    h2 = b2[..., 2] - b2[..., 0]
    w2 = b2[..., 3] - b2[..., 1]
    cy = ((b2[..., 0] + b2[..., 2]) / 2 - b1[..., 0]) / h1
    cx = ((b2[..., 1] + b2[..., 3]) / 2 - b1[..., 1]) / w1
    return jnp.stack([cy, cx, jnp.log(h2 / h1), jnp.log(w2 / w1)], axis=-1)


def apply_action(b1: jax.Array, action: jax.Array) -> jax.Array:
    """The box reached from b1 by `action`: the inverse of `relative_action`.

    Args:
      b1: f32[..., 4] source boxes.
      action: f32[..., 4] = (cy, cx, log_h, log_w), broadcastable against b1.

    Returns:
      f32[..., 4] target boxes (not clipped: they may leave [0, 1]).
    """
    h1 = b1[..., 2] - b1[..., 0]
    w1 = b1[..., 3] - b1[..., 1]
    cy = b1[..., 0] + action[..., 0] * h1
    cx = b1[..., 1] + action[..., 1] * w1
    h2 = h1 * jnp.exp(action[..., 2])
    w2 = w1 * jnp.exp(action[..., 3])
    return jnp.stack([cy - h2 / 2, cx - w2 / 2, cy + h2 / 2, cx + w2 / 2], axis=-1)


def other_view_index(n: int) -> np.ndarray:
    """For source view i and slot s, the target view j != i that slot s holds.

    Slots list the other views in increasing order: j = s if s < i else s + 1.

    Args:
      n: the number of views (static).

    Returns:
      int32[n, n - 1] (a static numpy array, usable as a gather index inside jit).
    """
    slots = np.arange(n - 1)[None, :]
    sources = np.arange(n)[:, None]
    return (slots + (slots >= sources)).astype(np.int32)


def pairwise_actions(boxes: jax.Array) -> jax.Array:
    """The actions between every ordered pair of distinct views.

    Args:
      boxes: f32[n, 4].

    Returns:
      f32[n, n - 1, 4]: entry [i, s] moves from view i to view j = other_view_index(n)[i, s].
    """
    n = boxes.shape[0]
    targets = boxes[other_view_index(n)]  # [n, n-1, 4]
    return relative_action(boxes[:, None, :], targets)


def box_iou(a: jax.Array, b: jax.Array) -> jax.Array:
    """Intersection over union of boxes: f32[..., 4] and f32[..., 4] (broadcast) -> f32[...]."""
    top = jnp.maximum(a[..., 0], b[..., 0])
    left = jnp.maximum(a[..., 1], b[..., 1])
    bottom = jnp.minimum(a[..., 2], b[..., 2])
    right = jnp.minimum(a[..., 3], b[..., 3])
    intersection = jnp.maximum(bottom - top, 0.0) * jnp.maximum(right - left, 0.0)
    area = lambda box: (box[..., 2] - box[..., 0]) * (box[..., 3] - box[..., 1])
    return intersection / jnp.maximum(area(a) + area(b) - intersection, 1e-12)


def candidate_grid(
    centers: tuple[float, ...] = (1 / 6, 1 / 2, 5 / 6),
    sizes: tuple[float, ...] = (1 / 3, 2 / 3, 1.0),
) -> np.ndarray:
    """A fixed grid of candidate actions relative to a view: every centre (cy, cx) in
    `centers`^2 at every square relative size in `sizes`. f32[G, 4] (cy, cx, log_h, log_w),
    G = len(centers)^2 * len(sizes) (27 by default); used as the next actions of `max_a'`."""
    grid = [
        (cy, cx, math.log(size), math.log(size))
        for size in sizes
        for cy in centers
        for cx in centers
    ]
    return np.asarray(grid, np.float32)
