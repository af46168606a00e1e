"""SimCLR as a base objective: the annotations are augmented crops of the annotation batch.

Each image has two augmented crops. The base loss is SimCLR's NT-Xent (`objective.simclr.loss
= "nt_xent"`, the default: 2N - 2 negatives per crop) or the cross-view InfoNCE of the first
crop against the second (`"cross_view"`: N - 1 negatives). The annotation of image a is its
second crop: psi_base(l_a) = g(crop_2), psi_ab(l_a) = a separate projection of crop_2's
features. So p(l_a | x) says how likely x is a view of image a.
"""

import jax.numpy as jnp
from flax import nnx

from avrl_jax.models.heads import ProjectionHead
from avrl_jax.objectives import base as losses
from avrl_jax.objectives.objective import BaseObjective, Outputs, first_crop_logits

SIMCLR_LOSSES = ("nt_xent", "cross_view")


class SimCLRHeads(nnx.Module):
    def __init__(
        self, width: int, hidden_dim: int, embed_dim: int, *, batch_norm: bool, rngs: nnx.Rngs
    ):
        self.ab_annotations = ProjectionHead(
            width, hidden_dim, embed_dim, batch_norm=batch_norm, rngs=rngs
        )


class SimCLR(BaseObjective):
    name = "simclr"
    global_crops = 2

    def build_heads(self, width, rngs):
        model = self.config.model
        return SimCLRHeads(
            width,
            model.head_hidden_dim,
            model.embed_dim,
            batch_norm=model.get("head_batch_norm", False),
            rngs=rngs,
        )

    def embeddings(self, model, crop_features, crop_queries, ann_batch):
        # The second crop of each image is its annotation; the base head g embeds both sides
        # (its query is the one NT-Xent uses, not a second call of g).
        return crop_queries[1], model.heads.ab_annotations(crop_features[1])

    def base_loss(self, model, online: Outputs, teacher, ann_batch, extras, step):
        kind = self.objective.simclr.loss
        metrics = {}
        if kind == "nt_xent":
            loss, accuracy = losses.nt_xent(online.crop_queries[:2], model.base_temperature())
            # Each crop picks its positive among the other 2N - 1 crops.
            metrics["base/max_entropy"] = jnp.log(2.0 * online.crop_queries.shape[1] - 1.0)
        elif kind == "cross_view":
            loss, accuracy = losses.info_nce(first_crop_logits(model, online))
        else:
            raise ValueError(
                f"objective.simclr.loss={kind!r} is not valid; choose one of {SIMCLR_LOSSES}"
            )
        return loss, {**metrics, "base/accuracy": accuracy}
