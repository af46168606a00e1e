"""The environment: an MDP over views of an image, as pure JAX functions.

See docs/design.md §1.1 and §2.
"""

from avrl_jax.env.augment import (
    Augmentation,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    augment_view,
    color_jitter,
    flip_and_jitter,
    flip_left_right,
    gaussian_blur,
    grayscale,
    hsv_to_rgb,
    rgb_to_hsv,
    solarize,
    strength_jitter,
)
from avrl_jax.env.boxes import (
    apply_action,
    other_view_index,
    pairwise_actions,
    relative_action,
    sample_views,
)
from avrl_jax.env.render import (
    NORM_MEAN,
    NORM_STD,
    denormalize,
    normalize,
    render,
)
from avrl_jax.env.tokens import (
    ActionBins,
    bin_widths,
    detokenize,
    flip_token,
    tokenize,
    vocab_size,
)
from avrl_jax.env.views import episode_key, sample_episode

__all__ = [
    "NORM_MEAN",
    "NORM_STD",
    "ActionBins",
    "Augmentation",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "apply_action",
    "flip_and_jitter",
    "strength_jitter",
    "augment_view",
    "bin_widths",
    "color_jitter",
    "denormalize",
    "detokenize",
    "episode_key",
    "flip_left_right",
    "flip_token",
    "gaussian_blur",
    "grayscale",
    "hsv_to_rgb",
    "normalize",
    "other_view_index",
    "pairwise_actions",
    "relative_action",
    "render",
    "rgb_to_hsv",
    "sample_episode",
    "sample_views",
    "solarize",
    "tokenize",
    "vocab_size",
]
