"""One annotation-bootstrapping update: env -> target network -> online losses -> optax -> EMA.

Everything here is pure and runs inside one `jax.jit` (see `make_update_step`). Shapes follow
DESIGN §1.4: B bootstrap images with n views each, Ba annotation images with m crops each,
A annotations (Ba crops for simclr, C classes for labels), T tokens per action.
"""

from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from avrl_jax.env.boxes import sample_views
from avrl_jax.env.render import augment, normalize, render
from avrl_jax.env.tokens import ActionBins
from avrl_jax.env.views import episode_key, sample_episode
from avrl_jax.models.params import from_plain_params
from avrl_jax.objectives import base as base_losses
from avrl_jax.objectives import bootstrap
from avrl_jax.objectives.ema import ema_momentum, ema_update

# Independent key streams derived from the run's seed; each example's key then folds in its
# position in its data stream, so views never depend on batch position or device count.
BOOTSTRAP_STREAM, ANNOTATION_STREAM = 0, 1
# Crops per annotation image: simclr contrasts two crops, labels classifies one.
ANNOTATION_CROPS = {"simclr": 2, "labels": 1}


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    target_params: Any
    opt_state: Any
    rng: jax.Array


def stream_keys(seed: int, stream: int, index: jax.Array) -> jax.Array:
    """One key per example: fold_in(fold_in(key(seed), stream), index). index: int [N]."""
    stream_key = jax.random.fold_in(jax.random.key(seed), stream)
    return jax.vmap(lambda i: episode_key(stream_key, i))(index)


def bootstrap_episodes(config, canvas: jax.Array, index: jax.Array) -> dict[str, jax.Array]:
    """Views and action tokens of the bootstrap batch. canvas: uint8 [B, H, W, 3].

    Returns views f32 [B, n, h, w, 3], tokens int32 [B, n, n-1, T], boxes f32 [B, n, 4].
    """
    env = config.env
    keys = stream_keys(config.seed, BOOTSTRAP_STREAM, index)
    sample = lambda key, image: sample_episode(
        key,
        image,
        num_views=env.num_views,
        out_size=env.view_size,
        scale=tuple(env.scale),
        ratio=tuple(env.ratio),
        flip_prob=env.flip_prob,
        jitter_strength=env.jitter_strength,
        bins=ActionBins(**env.bins),
    )
    return jax.vmap(sample)(keys, canvas)


def annotation_crops(config, canvas: jax.Array, index: jax.Array) -> jax.Array:
    """Augmented crops of the annotation batch: uint8 [Ba, H, W, 3] -> f32 [Ba, m, h, w, 3]."""
    crops = config.annotation_crops
    num_crops = ANNOTATION_CROPS[config.objective.base]

    def one_image(key, image):
        box_key, aug_key = jax.random.split(key)
        boxes = sample_views(box_key, num_crops, scale=tuple(crops.scale), ratio=tuple(crops.ratio))

        def one_crop(key, box):
            view = render(image, box, config.env.view_size)
            view, _ = augment(key, view, crops.flip_prob, crops.jitter_strength)
            return normalize(view)

        return jax.vmap(one_crop)(jax.random.split(aug_key, num_crops), boxes)

    keys = stream_keys(config.seed, ANNOTATION_STREAM, index)
    return jax.vmap(one_image)(keys, canvas)


def _forward(model, config, images, action_tokens, num_boot: int, num_ann: int):
    """Encode every view once and compute what both networks need.

    images: [num_boot*n + num_ann*m, h, w, 3]; action_tokens: int [num_boot, n, n-1, T] or None
    when the bootstrap loss is off.
    """
    patch_tokens, pooled = model.encoder(images)
    split = images.shape[0] - num_ann * ANNOTATION_CROPS[config.objective.base]
    ann_pooled = pooled[split:].reshape(num_ann, -1, pooled.shape[-1])
    base_psi, ab_psi = model.annotations(ann_pooled[:, -1])
    out = {"ann_pooled": ann_pooled, "base_psi": base_psi}
    if action_tokens is not None:
        b, n, q, t = action_tokens.shape
        phi = model.values(patch_tokens[:split], action_tokens.reshape(b * n, q, t))
        logits = base_losses.annotation_logits(phi, ab_psi, model.ab_temperature())
        out["q_logits"] = logits.reshape(b, n, q, -1)
        out["boot_query"] = model.base_query(pooled[:split]).reshape(b, n, -1)
    return out


def _base_loss(model, config, out, annotation_batch) -> tuple[jax.Array, jax.Array]:
    query = model.base_query(out["ann_pooled"][:, 0])
    logits = base_losses.annotation_logits(query, out["base_psi"], model.base_temperature())
    if config.objective.base == "simclr":
        return base_losses.info_nce(logits)
    return base_losses.label_cross_entropy(logits, annotation_batch["label"])


def compute_losses(graphdef, config, params, target_params, batch):
    """Total loss and metrics. Gradients flow into `params` only.

    batch: {"bootstrap": {"image", "index"}, "annotation": {"image", "index", ["label"]}}.
    """
    objective = config.objective
    use_bootstrap = objective.ab_weight > 0
    ann = batch["annotation"]
    ann_images = annotation_crops(config, ann["image"], ann["index"])
    num_ann = ann_images.shape[0]
    images = ann_images.reshape(-1, *ann_images.shape[2:])
    action_tokens, num_boot = None, 0
    if use_bootstrap:
        episodes = bootstrap_episodes(
            config, batch["bootstrap"]["image"], batch["bootstrap"]["index"]
        )
        views = episodes["views"]
        num_boot = views.shape[0]
        images = jnp.concatenate([views.reshape(-1, *views.shape[2:]), images], axis=0)
        action_tokens = episodes["tokens"]

    model = from_plain_params(graphdef, params)
    out = _forward(model, config, images, action_tokens, num_boot, num_ann)
    base_loss, base_accuracy = _base_loss(model, config, out, ann)
    metrics = {
        "base/loss": base_loss,
        "base/accuracy": base_accuracy,
        "base/max_entropy": jnp.log(jnp.asarray(out["base_psi"].shape[0], jnp.float32)),
        "base/temperature": model.base_temperature(),
    }
    loss = objective.base_weight * base_loss
    if use_bootstrap:
        if config.ema.enabled:
            target = from_plain_params(graphdef, target_params)
            target_out = _forward(target, config, images, action_tokens, num_boot, num_ann)
        else:  # Ablation: targets from the online network, stop-gradient.
            target, target_out = model, out
        target_out = jax.lax.stop_gradient(target_out)
        reward_logits = base_losses.annotation_logits(
            target_out["boot_query"], target_out["base_psi"], target.base_temperature()
        )
        rewards = jax.lax.stop_gradient(jax.nn.softmax(reward_logits, axis=-1))
        next_values = bootstrap.value_probabilities(target_out["q_logits"], objective.divergence)
        targets = bootstrap.bootstrap_targets(
            rewards, next_values, objective.gamma, objective.divergence
        )
        ab_loss = bootstrap.bootstrap_loss(out["q_logits"], targets, objective.divergence)
        loss = loss + objective.ab_weight * ab_loss
        metrics.update(bootstrap.bootstrap_metrics(out["q_logits"], targets))
        metrics["ab/loss"] = ab_loss
        metrics["ab/temperature"] = model.ab_temperature()
    metrics["loss"] = loss
    return loss, metrics


def make_update_step(graphdef, config, optimizer: optax.GradientTransformation) -> Callable:
    """update(state, batch) -> (state, metrics); pure, to be jitted with shardings."""

    def update(state: TrainState, batch) -> tuple[TrainState, dict]:
        grad_fn = jax.value_and_grad(
            lambda p: compute_losses(graphdef, config, p, state.target_params, batch),
            has_aux=True,
        )
        (_, metrics), grads = grad_fn(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        momentum = ema_momentum(
            state.step,
            base=config.ema.momentum,
            final=config.ema.final_momentum,
            total_steps=config.total_steps,
            schedule=config.ema.schedule,
        )
        target_params = ema_update(state.target_params, params, momentum)
        metrics["grad_norm"] = optax.tree.norm(grads)
        metrics["ema/momentum"] = momentum
        new_state = state.replace(
            step=state.step + 1,
            params=params,
            target_params=target_params,
            opt_state=opt_state,
            rng=jax.random.fold_in(state.rng, state.step),
        )
        return new_state, metrics

    return update


def init_state(graphdef, params, optimizer, seed: int) -> TrainState:
    """A fresh state: the target starts as a copy of the online parameters."""
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        target_params=jax.tree.map(jnp.copy, params),
        opt_state=optimizer.init(params),
        rng=jax.random.key_data(jax.random.key(seed)),
    )
