"""What a base objective is, for the update step: its crops, heads, annotations and loss.

A base objective (docs/design.md §1.2) defines the annotations l, their likelihood p(l | x)
(the reward of annotation bootstrapping, read from the target network) and its own loss on the
annotation batch. Each lives in one module of this package (`simclr`, `labels`, `dino`, `clip`) as a
subclass of `BaseObjective`, registered in `avrl_jax.objectives.registry`; the update step,
the model, the input pipeline and the benchmarks ask the objective, never its name.

The forward pass hands objectives an `Outputs`: the pooled features and base queries g(x) of
every annotation crop (in crop-group order, global crops first), the annotation embeddings
psi(l) of both heads, and, on bootstrap batches, the base queries of the views and the value
logits.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import flax
import jax
import jax.numpy as jnp
from flax import nnx

from avrl_jax.env.augment import Augmentation
from avrl_jax.objectives import base as losses


@dataclasses.dataclass(frozen=True)
class CropGroup:
    """`count` crops of each annotation image, rendered at `size` px with one augmentation.

    `teacher`: a teacher network (DINO's) sees this group; teacher groups come first.
    """

    count: int
    size: int
    scale: tuple[float, float]
    ratio: tuple[float, float]
    augmentation: Augmentation
    teacher: bool = True


@flax.struct.dataclass
class Outputs:
    """One network's forward pass. Ba annotation images with m crops; B images with n views.

    crop_features: f32[m, Ba, D] pooled encoder outputs of the annotation crops.
    crop_queries:  f32[m, Ba, d] base queries g(x) of the crops (unit norm).
    base_psi, ab_psi: f32[A, d] annotation embeddings of the base loss and the value function.
    view_queries:  f32[B, n, d] g(x) of the bootstrap views (None without bootstrapping).
    q_logits:      f32[B, n, n-1, A] value logits of the in-batch actions (None without).
    grid_q_logits: f32[B, n, G, A] value logits of the fixed candidate grid (target only).
    """

    crop_features: jax.Array
    crop_queries: jax.Array
    base_psi: jax.Array
    ab_psi: jax.Array
    view_queries: jax.Array | None = None
    q_logits: jax.Array | None = None
    grid_q_logits: jax.Array | None = None


class BaseObjective:
    """The interface; subclasses set the class attributes and override what differs.

    Attributes:
      name: the value of `objective.base`.
      annotation_fields: batch fields read beyond `image` and `index` (e.g. ("label",)).
      query_layers: Linear layers of the base query head g.
      global_crops: crops of each annotation image at the view size.
      uses_teacher: whether the base loss reads a teacher network (DINO's EMA teacher).
    """

    name: ClassVar[str] = ""
    annotation_fields: ClassVar[tuple[str, ...]] = ()
    query_layers: ClassVar[int] = 2
    global_crops: ClassVar[int] = 1
    uses_teacher: ClassVar[bool] = False

    def __init__(self, config):
        self.config = config
        self.objective = config.objective

    # --- Data ---------------------------------------------------------------------------
    def crop_groups(self) -> tuple[CropGroup, ...]:
        """The annotation crops of each image: `global_crops` with `annotation_crops.*`."""
        crops = self.config.annotation_crops
        return (
            CropGroup(
                count=self.global_crops,
                size=self.config.env.view_size,
                scale=tuple(crops.scale),
                ratio=tuple(crops.ratio),
                augmentation=Augmentation.from_config(crops.augment),
            ),
        )

    def crops_per_image(self) -> int:
        return sum(group.count for group in self.crop_groups())

    def teacher_crops(self) -> int:
        return sum(group.count for group in self.crop_groups() if group.teacher)

    # --- Model --------------------------------------------------------------------------
    def num_annotations(self) -> int:
        """Size of a fixed annotation set (classes, prototypes); 0 when it is the batch."""
        return 0

    def build_heads(self, width: int, rngs: nnx.Rngs) -> nnx.Module:
        """The objective's annotation heads (psi of the base loss and of the value function)."""
        raise NotImplementedError

    def embeddings(self, model, crop_features: jax.Array, crop_queries: jax.Array, ann_batch):
        """(base_psi f32[A, d], ab_psi f32[A, d]) of an annotation batch, given the crops'
        features [m, Ba, D] and their base queries g(crop) [m, Ba, d]."""
        raise NotImplementedError

    # --- Rewards and loss ---------------------------------------------------------------
    def reward_logits(self, target, view_queries, base_psi, extras: dict, step) -> jax.Array:
        """log p(l | x) up to a constant, from the target network: [..., d] -> [..., A]."""
        return losses.annotation_logits(view_queries, base_psi, target.base_temperature())

    def base_loss(
        self, model, online: Outputs, teacher: Outputs | None, ann_batch: dict, extras, step
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        raise NotImplementedError

    def teacher_is_ema(self) -> bool:
        """Whether the base loss's teacher is the EMA network (else the online one)."""
        return False

    def init_extras(self) -> dict:
        """Objective state outside the optimizer (DINO's centre)."""
        return {}

    def update_extras(self, extras: dict, teacher: Outputs | None) -> dict:
        return extras

    def mask_updates(self, updates: Any, step: jax.Array) -> Any:
        """The optimizer's updates, with any frozen parameters' zeroed (DINO's last layer)."""
        return updates


def first_crop_logits(model, online: Outputs) -> jax.Array:
    """t * <g(crop 0), psi>: the logits of the first crop of each image against the batch."""
    return losses.annotation_logits(
        online.crop_queries[0], online.base_psi, model.base_temperature()
    )


def entropy(probs: jax.Array, axis: int = -1) -> jax.Array:
    return -jnp.sum(probs * jnp.log(jnp.clip(probs, 1e-12)), axis=axis)
