"""CLIP as a base objective: the annotations are the captions of the annotation batch.

A byte-level text encoder (`model.text`) embeds each caption; one projection per side gives
psi_base and psi_ab. The base loss is CLIP's symmetric image-text InfoNCE.

`objective.clip.extra_views = k > 0` is the arXiv version's fair "CLIP +Aug" baseline (our
reading): every annotation image also gets k random-resized crops with the bootstrap views'
scale range (`env.scale`, RRC(0.05, 1)), and each crop is contrasted with its image's caption
too, so CLIP sees the same extra views AB renders. With k = 0 this is plain CLIP.
"""

import jax.numpy as jnp
from flax import nnx

from avrl_jax.env.augment import Augmentation
from avrl_jax.models.heads import ProjectionHead
from avrl_jax.models.text import TextEncoder
from avrl_jax.objectives import base as losses
from avrl_jax.objectives.objective import BaseObjective, CropGroup


class TextHeads(nnx.Module):
    """The shared text encoder, with a projection for each side."""

    def __init__(self, text: dict, hidden_dim: int, embed_dim: int, *, rngs: nnx.Rngs):
        self.text_encoder = TextEncoder(rngs=rngs, **text)
        self.base_annotations = ProjectionHead(text["width"], hidden_dim, embed_dim, rngs=rngs)
        self.ab_annotations = ProjectionHead(text["width"], hidden_dim, embed_dim, rngs=rngs)


class CLIP(BaseObjective):
    name = "clip"
    annotation_fields = ("caption_bytes",)

    def crop_groups(self):
        groups = super().crop_groups()
        extra = self.objective.clip.extra_views
        if extra:
            env = self.config.env
            groups += (
                CropGroup(
                    count=extra,
                    size=env.view_size,
                    scale=tuple(env.scale),
                    ratio=tuple(env.ratio),
                    augmentation=Augmentation.none(),  # the bootstrap views' RRC only
                    teacher=False,
                ),
            )
        return groups

    def build_heads(self, width, rngs):
        model = self.config.model
        return TextHeads(dict(model.text), model.head_hidden_dim, model.embed_dim, rngs=rngs)

    def embeddings(self, model, crop_features, crop_queries, ann_batch):
        text = model.heads.text_encoder(ann_batch["caption_bytes"])
        return model.heads.base_annotations(text), model.heads.ab_annotations(text)

    def base_loss(self, model, online, teacher, ann_batch, extras, step):
        # Every crop of image a against every caption: symmetric InfoNCE, averaged over crops.
        logits = losses.annotation_logits(
            online.crop_queries, online.base_psi, model.base_temperature()
        )  # [m, Ba, Ba]
        per_crop = [losses.info_nce(crop_logits) for crop_logits in logits]
        loss = jnp.mean(jnp.stack([loss for loss, _ in per_crop]))
        return loss, {"base/accuracy": per_crop[0][1]}
