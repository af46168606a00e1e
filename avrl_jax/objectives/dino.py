"""DINO as a base objective: the annotations are K learned prototypes.

As in Caron et al. 2021: multi-crop (two global crops at the view size plus
`objective.dino.local_crops` local crops at `local_size` px from `local_scale`), the teacher
(the EMA network) sees the global crops only, and the loss is the cross-entropy from every
teacher crop to every other student crop. The teacher's output is centred (an EMA of the
teacher's mean scores) and sharpened by a temperature that warms up linearly from
`warmup_teacher_temperature` to `teacher_temperature` over `teacher_warmup_steps`; the
prototype layer is frozen for the first `freeze_last_layer_steps`. Augmentations are DINO's
asymmetric ones: Gaussian blur with probability `global_blur_prob` = (1.0, 0.1) on the two
global crops and `local_blur_prob` on the local ones, solarisation `global_solarize_prob` =
(0.0, 0.2).

The head: g is a 3-layer MLP to an L2-normalised bottleneck; the prototypes are unit vectors,
so scores are cosines (DINO's weight-normalised last layer with its norm fixed).

`objective.dino.ema_teacher=False` takes the teacher from the online network (stop-gradient);
it is separate from `ema.enabled`, which switches annotation bootstrapping's target network.
"""

import dataclasses

import jax
import jax.numpy as jnp

from avrl_jax.env.augment import Augmentation
from avrl_jax.objectives import base as losses
from avrl_jax.objectives.labels import ClassHeads
from avrl_jax.objectives.objective import BaseObjective, CropGroup, Outputs, entropy


class DINO(BaseObjective):
    name = "dino"
    query_layers = 3
    global_crops = 2
    uses_teacher = True

    def num_annotations(self):
        return self.objective.num_prototypes

    def crop_groups(self):
        crops, dino = self.config.annotation_crops, self.objective.dino
        augmentation = Augmentation.from_config(crops.augment)
        groups = tuple(
            CropGroup(
                count=1,
                size=self.config.env.view_size,
                scale=tuple(crops.scale),
                ratio=tuple(crops.ratio),
                augmentation=dataclasses.replace(
                    augmentation, blur_prob=blur, solarize_prob=solarize
                ),
            )
            for blur, solarize in zip(dino.global_blur_prob, dino.global_solarize_prob, strict=True)
        )
        if dino.local_crops:
            groups += (
                CropGroup(
                    count=dino.local_crops,
                    size=dino.local_size,
                    scale=tuple(dino.local_scale),
                    ratio=tuple(crops.ratio),
                    augmentation=dataclasses.replace(
                        augmentation, blur_prob=dino.local_blur_prob, solarize_prob=0.0
                    ),
                    teacher=False,
                ),
            )
        return groups

    def build_heads(self, width, rngs):
        return ClassHeads(self.num_annotations(), self.config.model.embed_dim, rngs=rngs)

    def embeddings(self, model, crop_features, crop_queries, ann_batch):
        return model.heads.base_annotations(), model.heads.ab_annotations()

    def teacher_is_ema(self):
        return bool(self.objective.dino.ema_teacher)

    def teacher_temperature(self, step: jax.Array) -> jax.Array:
        dino = self.objective.dino
        progress = jnp.clip(step / max(dino.teacher_warmup_steps, 1), 0.0, 1.0)
        if not dino.teacher_warmup_steps:
            progress = jnp.ones_like(progress)
        start, end = dino.warmup_teacher_temperature, dino.teacher_temperature
        return start + (end - start) * progress

    def reward_logits(self, target, view_queries, base_psi, extras, step):
        # log of the teacher's centred, sharpened distribution over prototypes.
        scores = losses.annotation_logits(view_queries, base_psi, 1.0)
        return (scores - extras["center"]) / self.teacher_temperature(step)

    def base_loss(self, model, online: Outputs, teacher: Outputs, ann_batch, extras, step):
        dino = self.objective.dino
        student = losses.annotation_logits(online.crop_queries, online.base_psi, 1.0)
        teacher_scores = self.teacher_scores(teacher)
        teacher_probs = losses.dino_teacher_probabilities(
            teacher_scores, extras["center"], self.teacher_temperature(step)
        )
        student_logits = student / dino.student_temperature
        loss = losses.dino_loss(student_logits, teacher_probs)
        # Collapse diagnostics: a uniform teacher has entropy ln K (and marginal ln K); a
        # one-hot collapsed teacher has entropy 0 and marginal entropy 0.
        log_student = jax.nn.log_softmax(student_logits[: teacher_probs.shape[0]], axis=-1)
        kl = jnp.mean(
            jnp.sum(teacher_probs * (jnp.log(jnp.clip(teacher_probs, 1e-12)) - log_student), -1)
        )
        marginal = jnp.mean(teacher_probs.reshape(-1, teacher_probs.shape[-1]), axis=0)
        return loss, {
            "base/teacher_entropy": jnp.mean(entropy(teacher_probs)),
            "base/teacher_marginal_entropy": entropy(marginal),
            "base/teacher_student_kl": kl,
            "base/teacher_temperature": self.teacher_temperature(step),
        }

    def teacher_scores(self, teacher: Outputs) -> jax.Array:
        """Prototype scores of the teacher's (global) crops: [m_t, Ba, K]."""
        queries = teacher.crop_queries[: self.teacher_crops()]
        return losses.annotation_logits(queries, teacher.base_psi, 1.0)

    def init_extras(self):
        return {"center": jnp.zeros((self.num_annotations(),), jnp.float32)}

    def update_extras(self, extras, teacher):
        # The centre is an EMA of the teacher's mean output over its (global) crops.
        center = losses.update_center(
            extras["center"], self.teacher_scores(teacher), self.objective.dino.center_momentum
        )
        return {"center": center}

    def mask_updates(self, updates, step):
        freeze = self.objective.dino.freeze_last_layer_steps
        if not freeze:
            return updates
        keep = (step >= freeze).astype(jnp.float32)
        heads = dict(updates["heads"])
        heads["base_annotations"] = jax.tree.map(lambda u: u * keep, heads["base_annotations"])
        return {**updates, "heads": heads}
