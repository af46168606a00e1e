"""Models: the ViT encoder, the value head phi_ab, embedding heads, plain-dict parameters."""

from avrl_jax.models.heads import ClassEmbedding, ProjectionHead, Temperature, l2_normalize
from avrl_jax.models.params import from_plain_params, to_plain_params
from avrl_jax.models.value_head import ValueDecoder
from avrl_jax.models.vit import VIT_SIZES, ViT, vit_config

__all__ = [
    "VIT_SIZES",
    "ClassEmbedding",
    "ProjectionHead",
    "Temperature",
    "ValueDecoder",
    "ViT",
    "from_plain_params",
    "l2_normalize",
    "to_plain_params",
    "vit_config",
]
