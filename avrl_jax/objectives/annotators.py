"""Annotators: what each base objective makes the annotations, their likelihood, and its loss.

An annotator answers three questions for the update step (DESIGN §1.2):
- `embeddings`: the annotation embeddings psi(l) of an annotation batch, for the base loss and
  for the value function (separate heads): [A, d] each.
- `reward_logits`: log p(l | x) up to a constant, from the target network: the reward.
- `base_loss`: the base objective on the annotation batch.

| base     | annotations l                       | A             | crops/image |
|----------|-------------------------------------|---------------|-------------|
| simclr   | augmented crops of the batch images | batch size    | 2           |
| labels   | the classes of a curated set        | classes       | 1           |
| dino     | K learned prototypes                | K             | 2           |
| clip     | the captions of the batch           | batch size    | 1           |
"""

import dataclasses

import jax
import jax.numpy as jnp

from avrl_jax.objectives import base as losses


@dataclasses.dataclass(frozen=True)
class Annotator:
    """Shared behaviour: cosine scores with the model's learned base temperature."""

    num_crops: int = 1
    # Whether the base loss reads the target network (DINO's teacher).
    base_uses_target: bool = False

    def embeddings(self, model, ann_pooled: jax.Array, ann_batch: dict):
        raise NotImplementedError

    def reward_logits(self, target, query: jax.Array, base_psi: jax.Array, extras: dict):
        return losses.annotation_logits(query, base_psi, target.base_temperature())

    def base_loss(self, model, out: dict, target_out: dict | None, ann_batch: dict, extras):
        raise NotImplementedError

    def init_extras(self) -> dict:
        return {}

    def update_extras(self, extras: dict, target_out: dict | None) -> dict:
        return extras


def _queries(model, out: dict) -> jax.Array:
    """g(x) of every annotation crop: [m, Ba, d]."""
    return model.base_query(jnp.swapaxes(out["ann_pooled"], 0, 1))


@dataclasses.dataclass(frozen=True)
class SimCLR(Annotator):
    num_crops: int = 2

    def embeddings(self, model, ann_pooled, ann_batch):
        # The second crop of each image is its annotation; the base head g embeds both sides.
        return model.base_query(ann_pooled[:, 1]), model.ab_annotations(ann_pooled[:, 1])

    def base_loss(self, model, out, target_out, ann_batch, extras):
        logits = losses.annotation_logits(
            _queries(model, out)[0], out["base_psi"], model.base_temperature()
        )
        loss, accuracy = losses.info_nce(logits)
        return loss, {"base/accuracy": accuracy}


@dataclasses.dataclass(frozen=True)
class Labels(Annotator):
    def embeddings(self, model, ann_pooled, ann_batch):
        return model.base_annotations(), model.ab_annotations()

    def base_loss(self, model, out, target_out, ann_batch, extras):
        logits = losses.annotation_logits(
            _queries(model, out)[0], out["base_psi"], model.base_temperature()
        )
        loss, accuracy = losses.label_cross_entropy(logits, ann_batch["label"])
        return loss, {"base/accuracy": accuracy}


@dataclasses.dataclass(frozen=True)
class CLIP(Annotator):
    def embeddings(self, model, ann_pooled, ann_batch):
        text = model.text_encoder(ann_batch["caption_bytes"])
        return model.base_annotations(text), model.ab_annotations(text)

    def base_loss(self, model, out, target_out, ann_batch, extras):
        logits = losses.annotation_logits(
            _queries(model, out)[0], out["base_psi"], model.base_temperature()
        )
        loss, accuracy = losses.info_nce(logits)  # symmetric: image->text and text->image
        return loss, {"base/accuracy": accuracy}


@dataclasses.dataclass(frozen=True)
class DINO(Annotator):
    num_crops: int = 2
    base_uses_target: bool = True
    student_temperature: float = 0.1
    teacher_temperature: float = 0.04
    center_momentum: float = 0.9
    num_prototypes: int = 0

    def init_extras(self):
        return {"center": jnp.zeros((self.num_prototypes,), jnp.float32)}

    def embeddings(self, model, ann_pooled, ann_batch):
        return model.base_annotations(), model.ab_annotations()

    def reward_logits(self, target, query, base_psi, extras):
        # log of the teacher's centred, sharpened distribution over prototypes.
        scores = losses.annotation_logits(query, base_psi, 1.0)
        return (scores - extras["center"]) / self.teacher_temperature

    def base_loss(self, model, out, target_out, ann_batch, extras):
        student = losses.annotation_logits(_queries(model, out), out["base_psi"], 1.0)
        teacher = losses.dino_teacher_probabilities(
            target_out["ann_scores"], extras["center"], self.teacher_temperature
        )
        loss = losses.dino_loss(student / self.student_temperature, teacher)
        entropy = -jnp.mean(jnp.sum(teacher * jnp.log(jnp.clip(teacher, 1e-12)), axis=-1))
        return loss, {"base/teacher_entropy": entropy}

    def update_extras(self, extras, target_out):
        center = losses.update_center(
            extras["center"], target_out["ann_scores"], self.center_momentum
        )
        return {"center": center}


ANNOTATORS = {
    "simclr": lambda objective: SimCLR(),
    "labels": lambda objective: Labels(),
    "clip": lambda objective: CLIP(),
    "dino": lambda objective: DINO(
        student_temperature=objective.dino.student_temperature,
        teacher_temperature=objective.dino.teacher_temperature,
        center_momentum=objective.dino.center_momentum,
        num_prototypes=objective.num_prototypes,
    ),
}
BASE_OBJECTIVES = tuple(ANNOTATORS)


def make_annotator(objective_config) -> Annotator:
    """The annotator of `objective.base`; an unknown name lists the valid ones."""
    name = objective_config.base
    if name not in ANNOTATORS:
        raise ValueError(f"objective.base={name!r} is not valid; choose one of {BASE_OBJECTIVES}")
    return ANNOTATORS[name](objective_config)
