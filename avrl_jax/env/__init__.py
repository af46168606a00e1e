"""The environment: an MDP over views of an image, as pure JAX functions (see DESIGN.md 1.1, 2)."""

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
    augment,
    color_jitter,
    denormalize,
    flip_left_right,
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
    "apply_action",
    "augment",
    "bin_widths",
    "color_jitter",
    "denormalize",
    "detokenize",
    "episode_key",
    "flip_left_right",
    "flip_token",
    "normalize",
    "other_view_index",
    "pairwise_actions",
    "relative_action",
    "render",
    "sample_episode",
    "sample_views",
    "tokenize",
    "vocab_size",
]
