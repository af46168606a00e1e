"""The annotation-bootstrapping network: encoder, value head and annotation embeddings.

One module holds everything the online and the target (EMA) network share, so the target is
simply a second copy of the same parameters:
- `encoder`: ViT; patch tokens feed the value head, the pooled output feeds the heads.
- `value_head`: phi_ab(x, a), a Transformer decoder whose queries are action tokens.
- `base_query`: g(x), the base objective's embedding of a view.
- `heads`: the base objective's own annotation heads psi(l), for the base loss and for the value
  function (separate; docs/design.md §1.1): see `avrl_jax.objectives` (simclr crops, labels classes,
  dino prototypes, clip captions through a text encoder).
- `base_temperature`, `ab_temperature`: learned logit scales, bounded on the parameter.

Q(l | x, a) = t_ab * <phi_ab(x, a) / |phi_ab(x, a)|, psi_ab(l)>: cosine logits, so Q starts near
uniform over the annotations whatever the head's scale (docs/design.md §1.2).
"""

import jax
import jax.numpy as jnp
from flax import nnx

from avrl_jax.env.tokens import action_token_layout
from avrl_jax.models.heads import ProjectionHead, Temperature, l2_normalize
from avrl_jax.models.value_head import ValueDecoder
from avrl_jax.models.vit import ViT, vit_config
from avrl_jax.objectives import base as losses
from avrl_jax.objectives.registry import make_objective


class AnnotationBootstrapper(nnx.Module):
    """Encoder + value head + base query + the objective's annotation heads."""

    def __init__(
        self,
        *,
        encoder: dict,
        value_head: dict,
        image_size: int,
        embed_dim: int,
        head_hidden_dim: int,
        query_layers: int,
        head_batch_norm: bool,
        vocab_size: int,
        tokens_per_action: int,
        base_temperature: float,
        ab_temperature: float,
        build_heads,
        rngs: nnx.Rngs,
    ):
        # The encoder is built first, so it equals `models.build.build_encoder` at the same seed.
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
        self.base_query = ProjectionHead(
            width, head_hidden_dim, embed_dim, query_layers, batch_norm=head_batch_norm, rngs=rngs
        )
        self.heads = build_heads(width, rngs)
        self.base_temperature = Temperature(base_temperature)
        self.ab_temperature = Temperature(ab_temperature)

    def value_logits(
        self, patch_tokens: jax.Array, action_tokens: jax.Array, ab_psi: jax.Array
    ) -> jax.Array:
        """Q logits: patch_tokens [N, P, D], action_tokens int [N, Q, T], ab_psi [A, d] ->
        [N, Q, A], cosines of the unit-norm phi_ab(x, a) with psi_ab(l), times t_ab."""
        phi = l2_normalize(self.value_head(patch_tokens, action_tokens))
        return losses.annotation_logits(phi, ab_psi, self.ab_temperature())


def build_model(config, rngs: nnx.Rngs) -> AnnotationBootstrapper:
    """The network described by a training config (see configs/default.py)."""
    objective = make_objective(config)
    layout = action_token_layout(config.env)
    return AnnotationBootstrapper(
        encoder=dict(config.model.encoder),
        value_head=dict(config.model.value_head),
        image_size=config.env.view_size,
        embed_dim=config.model.embed_dim,
        head_hidden_dim=config.model.head_hidden_dim,
        query_layers=objective.query_layers,
        head_batch_norm=config.model.get("head_batch_norm", False),
        vocab_size=layout.vocab_size,
        tokens_per_action=layout.tokens_per_action,
        base_temperature=config.objective.base_temperature,
        ab_temperature=config.objective.ab_temperature,
        build_heads=objective.build_heads,
        rngs=rngs,
    )


def count_params(params) -> int:
    return sum(int(jnp.size(x)) for x in jax.tree.leaves(params))
