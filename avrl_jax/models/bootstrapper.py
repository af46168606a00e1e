"""The annotation-bootstrapping network: encoder, value head and annotation embeddings.

One module holds everything the online and the target (EMA) network share, so the target is
simply a second copy of the same parameters:
- `encoder`: ViT; patch tokens feed the value head, the pooled output feeds the heads.
- `value_head`: phi_ab(x, a), a Transformer decoder whose queries are action tokens.
- `base_query`: g(x), the base objective's embedding of a view.
- `base_annotations` / `ab_annotations`: psi(l), the annotation embeddings of the base loss and
  of the value function; separate heads (DESIGN §1.1). What they embed depends on the base
  objective (see `avrl_jax.objectives.annotators`): simclr crops (the base side is g itself),
  labels classes, dino prototypes, clip captions (through `text_encoder`).
- `base_temperature`, `ab_temperature`: learned logit scales.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from avrl_jax.env.tokens import ActionBins, vocab_size
from avrl_jax.models.heads import ClassEmbedding, ProjectionHead, Temperature
from avrl_jax.models.text import TextEncoder
from avrl_jax.models.value_head import ValueDecoder
from avrl_jax.models.vit import ViT, vit_config
from avrl_jax.objectives.annotators import BASE_OBJECTIVES


class AnnotationBootstrapper(nnx.Module):
    """Encoder + value head + annotation heads for one base objective."""

    def __init__(
        self,
        *,
        base_objective: str,
        encoder: dict,
        value_head: dict,
        image_size: int,
        embed_dim: int,
        head_hidden_dim: int,
        vocab_size: int,
        tokens_per_action: int,
        num_annotations: int,
        base_temperature: float,
        ab_temperature: float,
        rngs: nnx.Rngs,
        text: dict | None = None,
    ):
        if base_objective not in BASE_OBJECTIVES:
            raise ValueError(
                f"objective.base={base_objective!r} is not valid; choose one of {BASE_OBJECTIVES}"
            )
        self.encoder = ViT(image_size=image_size, rngs=rngs, **encoder)
        width = vit_config(encoder["variant"])["width"]
        self.value_head = ValueDecoder(
            vocab_size=vocab_size,
            tokens_per_action=tokens_per_action,
            input_dim=width,
            output_dim=embed_dim,
            rngs=rngs,
            **value_head,
        )
        # DINO's head is a 3-layer MLP to a bottleneck; the others use 2 layers.
        layers = 3 if base_objective == "dino" else 2
        self.base_query = ProjectionHead(width, head_hidden_dim, embed_dim, layers, rngs=rngs)
        if base_objective == "simclr":
            self.ab_annotations = ProjectionHead(width, head_hidden_dim, embed_dim, rngs=rngs)
        elif base_objective in ("labels", "dino"):  # classes or prototypes
            self.base_annotations = ClassEmbedding(num_annotations, embed_dim, rngs=rngs)
            self.ab_annotations = ClassEmbedding(num_annotations, embed_dim, rngs=rngs)
        else:  # clip: the shared text encoder, with a head for each side
            self.text_encoder = TextEncoder(rngs=rngs, **text)
            text_width = text["width"]
            self.base_annotations = ProjectionHead(
                text_width, head_hidden_dim, embed_dim, rngs=rngs
            )
            self.ab_annotations = ProjectionHead(text_width, head_hidden_dim, embed_dim, rngs=rngs)
        self.base_temperature = Temperature(base_temperature)
        self.ab_temperature = Temperature(ab_temperature)

    def values(self, patch_tokens: jax.Array, action_tokens: jax.Array) -> jax.Array:
        """phi_ab(x, a): patch_tokens [N, P, D], action_tokens int [N, Q, T] -> [N, Q, d]."""
        return self.value_head(patch_tokens, action_tokens)


def num_annotations(objective) -> int:
    """Size of a fixed annotation set (classes or prototypes); 0 when it is the batch."""
    return {"labels": objective.num_classes, "dino": objective.num_prototypes}.get(
        objective.base, 0
    )


def build_model(config, rngs: nnx.Rngs) -> AnnotationBootstrapper:
    """The network described by a training config (see configs/default.py)."""
    bins = ActionBins(**config.env.bins)
    with_flip = config.env.flip_prob > 0
    return AnnotationBootstrapper(
        base_objective=config.objective.base,
        encoder=dict(config.model.encoder),
        value_head=dict(config.model.value_head),
        image_size=config.env.view_size,
        embed_dim=config.model.embed_dim,
        head_hidden_dim=config.model.head_hidden_dim,
        vocab_size=vocab_size(bins, with_flip=with_flip),
        tokens_per_action=4 + int(with_flip),
        num_annotations=num_annotations(config.objective),
        base_temperature=config.objective.base_temperature,
        ab_temperature=config.objective.ab_temperature,
        text=dict(config.model.text),
        rngs=rngs,
    )


def count_params(params) -> int:
    return sum(int(jnp.size(x)) for x in jax.tree.leaves(params))
