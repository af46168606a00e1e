"""One image's episode: random views, their rendering and augmentation, and the action tokens.

`sample_episode` is what the train step calls per bootstrap image (vmapped over the batch, with
keys from `episode_key`, so that the views depend only on the seed and the example's position in
the global data stream: not on batch position, device count or host count).
"""

import jax
import jax.numpy as jnp
import numpy as np

from avrl_jax.env.augment import flip_and_jitter
from avrl_jax.env.boxes import other_view_index, pairwise_actions, sample_views
from avrl_jax.env.render import normalize, render
from avrl_jax.env.tokens import ActionBins, flip_token, jitter_token, tokenize

_LOW_32_BITS = 0xFFFFFFFF
_DEFAULT_BINS = ActionBins()


def episode_key(seed_key: jax.Array, index: int | np.integer | np.ndarray | jax.Array) -> jax.Array:
    """The key for the example at position `index` of the global data stream.

    The index is folded in as two 32-bit halves, high then low:
    fold_in(fold_in(seed_key, index >> 32), index & 0xFFFFFFFF), so positions past 2**32 stay
    distinct. Python and numpy integers are split exactly whatever their size; a JAX int32
    array (JAX's default without x64) is taken as its unsigned 32-bit value with a high half
    of 0, so it gives the same key as the equal int64 for every index in [0, 2**31).

    Args:
      seed_key: the run's data key (typed or raw uint32 key).
      index: a non-negative integer scalar (Python, numpy or JAX; may be traced, and vmapped).

    Returns:
      a key of the same kind as seed_key.
    """
    if isinstance(index, int | np.integer | np.ndarray):
        # Split on the host so int64 values are never truncated by JAX's 32-bit default.
        index = np.asarray(index, dtype=np.int64)
        high = (index >> 32).astype(np.uint32)
        low = (index & _LOW_32_BITS).astype(np.uint32)
    else:
        index = jnp.asarray(index)
        if index.dtype.itemsize == 8:
            high = (index >> 32).astype(jnp.uint32)
            low = (index & _LOW_32_BITS).astype(jnp.uint32)
        else:
            high = jnp.zeros(index.shape, jnp.uint32)
            low = index.astype(jnp.uint32)
    return jax.random.fold_in(jax.random.fold_in(seed_key, high), low)


def sample_episode(
    key: jax.Array,
    canvas: jax.Array,
    *,
    num_views: int,
    out_size: int,
    scale: tuple[float, float] = (0.05, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip_prob: float = 0.0,
    jitter_strength: float = 0.0,
    bins: ActionBins = _DEFAULT_BINS,
    antialias: bool = True,
) -> dict[str, jax.Array]:
    """Samples n views of one image and the actions between every ordered pair of them.

    Actions are expressed in the frame the network sees: when view i is mirrored (flip), the
    target's horizontal centre in its frame is mirrored too (cx -> 1 - cx), so "right" in the
    action means right in the pixels of x_i. Without flips, actions == pairwise_actions(boxes).
    With flip_prob > 0 a 5th token says whether view j is mirrored relative to view i.

    All keyword arguments except `key`'s and `canvas`'s values are static.

    Args:
      key: the episode's key, from `episode_key`.
      canvas: uint8[H, W, 3] the image.
      num_views: n.
      out_size: the views' side in pixels.
      scale: random-resized-crop area range (fraction of the canvas).
      ratio: random-resized-crop aspect-ratio range (width / height, in pixels).
      flip_prob: probability of mirroring each view; > 0 adds the flip token.
      jitter_strength: the largest colour-jitter strength (0: none); each view's strength is
        uniform in [0, jitter_strength] and > 0 adds the jitter token.
      bins: the action binning.
      antialias: low-pass filter when rendering downscales.

    Returns:
      a dict with
        boxes:   f32[n, 4] the views' boxes in the canvas (before any flip),
        views:   f32[n, out, out, 3] rendered, augmented and normalised (`normalize`),
        flipped: bool[n] whether each view is mirrored,
        actions: f32[n, n-1, 4] from view i to view j = other_view_index(n)[i, s], in view i's
                 displayed frame,
        tokens:  int32[n, n-1, T]: 4 coordinate tokens, then a flip token when flip_prob > 0,
                 then a jitter token (the target view's jitter strength, binned) when
                 jitter_strength > 0,
        jitter:  f32[n] each view's jitter strength as a fraction of jitter_strength.
    """
    k_boxes, k_augment, k_strength = jax.random.split(key, 3)
    height, width = canvas.shape[0], canvas.shape[1]
    boxes = sample_views(k_boxes, num_views, scale, ratio, image_aspect=width / height)
    views = jax.vmap(lambda box: render(canvas, box, out_size, antialias))(boxes)
    # Each view's jitter strength is drawn in [0, jitter_strength]: the agent's choice of
    # augmentation strength, which the action tells Q (the jitter token).
    strength = jax.random.uniform(k_strength, (num_views,)) if jitter_strength > 0 else None
    views, flipped = jax.vmap(
        flip_and_jitter, in_axes=(0, 0, None, 0 if strength is not None else None)
    )(
        jax.random.split(k_augment, num_views),
        views,
        flip_prob,
        jitter_strength * strength if strength is not None else 0.0,
    )

    actions = pairwise_actions(boxes)
    if flip_prob > 0:  # static: without flips every view is unflipped and nothing changes
        mirrored_cx = jnp.where(flipped[:, None], 1.0 - actions[..., 1], actions[..., 1])
        actions = actions.at[..., 1].set(mirrored_cx)
    tokens = tokenize(actions, bins)
    targets = other_view_index(num_views)
    if flip_prob > 0:
        relative_flip = flipped[:, None] != flipped[targets]
        tokens = jnp.concatenate([tokens, flip_token(relative_flip, bins)[..., None]], axis=-1)
    if strength is not None:
        jitter = jitter_token(strength[targets], bins, with_flip=flip_prob > 0)
        tokens = jnp.concatenate([tokens, jitter[..., None]], axis=-1)
    return {
        "boxes": boxes,
        "views": normalize(views),
        "flipped": flipped,
        "actions": actions,
        "tokens": tokens,
        "jitter": strength if strength is not None else jnp.zeros((num_views,)),
    }
