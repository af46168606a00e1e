"""Class labels as a base objective: the annotations are the classes of a curated set.

psi(l) is a learned unit vector per class (one table for the base loss, one for the value
function); the base loss is cross-entropy on cosine logits with a learned temperature.
"""

from flax import nnx

from avrl_jax.models.heads import ClassEmbedding
from avrl_jax.objectives import base as losses
from avrl_jax.objectives.objective import BaseObjective, first_crop_logits


class ClassHeads(nnx.Module):
    """A table of unit vectors for each side: classes (labels) or prototypes (dino)."""

    def __init__(self, num_annotations: int, embed_dim: int, *, rngs: nnx.Rngs):
        self.base_annotations = ClassEmbedding(num_annotations, embed_dim, rngs=rngs)
        self.ab_annotations = ClassEmbedding(num_annotations, embed_dim, rngs=rngs)


class Labels(BaseObjective):
    name = "labels"
    annotation_fields = ("label",)

    def num_annotations(self):
        return self.objective.num_classes

    def build_heads(self, width, rngs):
        return ClassHeads(self.num_annotations(), self.config.model.embed_dim, rngs=rngs)

    def embeddings(self, model, crop_features, crop_queries, ann_batch):
        return model.heads.base_annotations(), model.heads.ab_annotations()

    def base_loss(self, model, online, teacher, ann_batch, extras, step):
        logits = first_crop_logits(model, online)
        loss, accuracy = losses.label_cross_entropy(logits, ann_batch["label"])
        return loss, {"base/accuracy": accuracy}
