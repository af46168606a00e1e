"""One annotation-bootstrapping update: env -> target network -> online losses -> optax -> EMA.

Everything here is pure and runs inside one `jax.jit` (see `make_update_step`). Shapes follow
DESIGN §1.4: B bootstrap images with n views each, Ba annotation images with m crops each,
A annotations, T tokens per action. What the annotations are is the annotator's business
(`avrl_jax.objectives.annotators`); this module is the same for every base objective.
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
from avrl_jax.objectives.annotators import Annotator, make_annotator
from avrl_jax.objectives.ema import ema_momentum, ema_update

# Independent key streams derived from the run's seed; each example's key then folds in its
# position in its data stream, so views never depend on batch position or device count.
BOOTSTRAP_STREAM, ANNOTATION_STREAM = 0, 1


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    target_params: Any
    opt_state: Any
    rng: jax.Array
    extras: Any  # objective state outside the optimizer, e.g. DINO's centre


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


def annotation_crops(config, num_crops: int, canvas: jax.Array, index: jax.Array) -> jax.Array:
    """Augmented crops of the annotation batch: uint8 [Ba, H, W, 3] -> f32 [Ba, m, h, w, 3]."""
    crops = config.annotation_crops

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


def forward(model, annotator: Annotator, images, action_tokens, ann_batch, num_ann: int):
    """Encode every view once and compute what the losses need from one network.

    images: [B*n + Ba*m, h, w, 3] (bootstrap views first); action_tokens: int [B, n, n-1, T],
    or None when the bootstrap loss is off.
    """
    patch_tokens, pooled = model.encoder(images)
    split = images.shape[0] - num_ann * annotator.num_crops
    ann_pooled = pooled[split:].reshape(num_ann, annotator.num_crops, -1)
    base_psi, ab_psi = annotator.embeddings(model, ann_pooled, ann_batch)
    ann_queries = model.base_query(jnp.swapaxes(ann_pooled, 0, 1))  # [m, Ba, d]
    out = {
        "ann_pooled": ann_pooled,
        "base_psi": base_psi,
        "ann_scores": base_losses.annotation_logits(ann_queries, base_psi, 1.0),  # [m, Ba, A]
    }
    if action_tokens is not None:
        b, n, q, t = action_tokens.shape
        phi = model.values(patch_tokens[:split], action_tokens.reshape(b * n, q, t))
        logits = base_losses.annotation_logits(phi, ab_psi, model.ab_temperature())
        out["q_logits"] = logits.reshape(b, n, q, -1)
        out["boot_query"] = model.base_query(pooled[:split]).reshape(b, n, -1)
    return out


def compute_losses(graphdef, config, params, target_params, extras, batch):
    """Total loss, metrics and the objective's next extras. Gradients flow into `params` only.

    batch: {"annotation": {"image", "index", [label | caption_bytes]},
            "bootstrap": {"image", "index"} (absent when objective.ab_weight == 0)}.
    """
    objective = config.objective
    annotator = make_annotator(objective)
    use_bootstrap = objective.ab_weight > 0
    ann = batch["annotation"]
    ann_images = annotation_crops(config, annotator.num_crops, ann["image"], ann["index"])
    num_ann = ann_images.shape[0]
    images = ann_images.reshape(-1, *ann_images.shape[2:])
    action_tokens = None
    if use_bootstrap:
        boot = batch["bootstrap"]
        episodes = bootstrap_episodes(config, boot["image"], boot["index"])
        views = episodes["views"]
        images = jnp.concatenate([views.reshape(-1, *views.shape[2:]), images], axis=0)
        # With model.value_head.use_action_tokens=False the value head ignores them.
        action_tokens = episodes["tokens"]

    model = from_plain_params(graphdef, params)
    out = forward(model, annotator, images, action_tokens, ann, num_ann)
    target, target_out = None, None
    if use_bootstrap or annotator.base_uses_target:
        if config.ema.enabled:
            target = from_plain_params(graphdef, target_params)
            target_out = forward(target, annotator, images, action_tokens, ann, num_ann)
        else:  # Ablation: targets from the online network, stop-gradient.
            target, target_out = model, out
        target_out = jax.lax.stop_gradient(target_out)

    base_loss, metrics = annotator.base_loss(model, out, target_out, ann, extras)
    metrics.update(
        {
            "base/loss": base_loss,
            "base/max_entropy": jnp.log(jnp.asarray(out["base_psi"].shape[0], jnp.float32)),
            "base/temperature": model.base_temperature(),
        }
    )
    loss = objective.base_weight * base_loss
    if use_bootstrap:
        reward_logits = annotator.reward_logits(
            target, target_out["boot_query"], target_out["base_psi"], extras
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
    return loss, (metrics, annotator.update_extras(extras, target_out))


def make_update_step(graphdef, config, optimizer: optax.GradientTransformation) -> Callable:
    """update(state, batch) -> (state, metrics); pure, to be jitted with shardings."""

    def update(state: TrainState, batch) -> tuple[TrainState, dict]:
        grad_fn = jax.value_and_grad(
            lambda p: compute_losses(graphdef, config, p, state.target_params, state.extras, batch),
            has_aux=True,
        )
        (_, (metrics, extras)), grads = grad_fn(state.params)
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
            extras=extras,
        )
        return new_state, metrics

    return update


def init_state(params, optimizer, config) -> TrainState:
    """A fresh state: the target starts as a copy of the online parameters."""
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        target_params=jax.tree.map(jnp.copy, params),
        opt_state=optimizer.init(params),
        rng=jax.random.key_data(jax.random.key(config.seed)),
        extras=make_annotator(config.objective).init_extras(),
    )
