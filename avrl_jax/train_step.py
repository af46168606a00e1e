"""One annotation-bootstrapping update: env -> target network -> online losses -> optax -> EMA.

Everything here is pure and runs inside one `jax.jit` (see `make_update_step`). Shapes follow
docs/design.md §1.4: B bootstrap images with n views each, Ba annotation images with m crops each
(the base objective's crop groups), A annotations, T tokens per action. What the annotations
are is the base objective's business (`avrl_jax.objectives`); this module is the same for
every base objective.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from avrl_jax.env.augment import augment_view
from avrl_jax.env.boxes import candidate_grid, sample_views
from avrl_jax.env.render import normalize, render
from avrl_jax.env.tokens import action_token_layout, plain_action_tokens
from avrl_jax.env.views import episode_key, sample_episode
from avrl_jax.models.heads import clamp_temperatures, use_batch_statistics
from avrl_jax.models.params import batch_stats, from_plain_params, with_batch_stats
from avrl_jax.objectives import bootstrap
from avrl_jax.objectives.ema import ema_momentum, ema_update
from avrl_jax.objectives.objective import BaseObjective, CropGroup, Outputs
from avrl_jax.objectives.registry import make_objective

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
        bins=action_token_layout(env).bins,
    )
    return jax.vmap(sample)(keys, canvas)


def annotation_crops(
    config, groups: tuple[CropGroup, ...], canvas: jax.Array, index: jax.Array
) -> tuple[jax.Array, ...]:
    """Augmented crops of the annotation batch, one array per crop group.

    canvas: uint8 [Ba, H, W, 3] -> (f32 [Ba, count, size, size, 3] for each group).
    """

    def one_image(key, image):
        out = []
        for group, group_key in zip(groups, jax.random.split(key, len(groups)), strict=True):
            box_key, aug_key = jax.random.split(group_key)
            boxes = sample_views(box_key, group.count, scale=group.scale, ratio=group.ratio)

            def one_crop(key, box, group=group):
                view = render(image, box, group.size)
                view, _ = augment_view(key, view, group.augmentation)
                return normalize(view)

            out.append(jax.vmap(one_crop)(jax.random.split(aug_key, group.count), boxes))
        return tuple(out)

    keys = stream_keys(config.seed, ANNOTATION_STREAM, index)
    return jax.vmap(one_image)(keys, canvas)


def grid_tokens(config) -> np.ndarray:
    """int32 [G, T]: the tokens of the fixed candidate grid of `max_a'` (unflipped, unjittered)."""
    layout = action_token_layout(config.env)
    grid = config.objective.grid
    with jax.ensure_compile_time_eval():  # constants, also when called while tracing
        actions = candidate_grid(grid.centers, grid.sizes)
        return np.asarray(plain_action_tokens(actions, layout)).astype(np.int32)


@flax.struct.dataclass
class Inputs:
    """What the env renders for one step. views f32 [B, n, h, w, 3], tokens int [B, n, n-1, T],
    boxes f32 [B, n, 4] (None without bootstrapping); crops: one f32 [Ba, c, s, s, 3] per
    crop group."""

    crops: tuple
    views: jax.Array | None = None
    tokens: jax.Array | None = None
    boxes: jax.Array | None = None


def render_inputs(config, objective: BaseObjective, batch) -> Inputs:
    ann = batch["annotation"]
    crops = annotation_crops(config, objective.crop_groups(), ann["image"], ann["index"])
    if config.objective.ab_weight <= 0:
        return Inputs(crops=crops)
    boot = batch["bootstrap"]
    episodes = bootstrap_episodes(config, boot["image"], boot["index"])
    return Inputs(
        crops=crops, views=episodes["views"], tokens=episodes["tokens"], boxes=episodes["boxes"]
    )


def encode(model, images: list[jax.Array]) -> list[tuple[jax.Array, jax.Array]]:
    """(patch tokens, pooled) of each array of images [N_k, s_k, s_k, 3], one encoder call per
    resolution (the bootstrap views share theirs with the global crops)."""
    by_size: dict[int, list[int]] = {}
    for k, x in enumerate(images):
        by_size.setdefault(x.shape[1], []).append(k)
    out = [None] * len(images)
    for ks in by_size.values():
        patch_tokens, pooled = model.encoder(jnp.concatenate([images[k] for k in ks], axis=0))
        offsets = np.cumsum([0] + [images[k].shape[0] for k in ks])
        for k, lo, hi in zip(ks, offsets[:-1], offsets[1:], strict=True):
            out[k] = (patch_tokens[lo:hi], pooled[lo:hi])
    return out


def forward(
    model, objective: BaseObjective, inputs: Inputs, ann_batch, grid: np.ndarray | None = None
) -> Outputs:
    """Encode every view and crop once and compute what the losses need from one network.

    grid: int [G, T] candidate action tokens to score on every view as well (target network).
    """
    flat = lambda x: x.reshape(-1, *x.shape[2:])
    images = [flat(c) for c in inputs.crops]
    if inputs.views is not None:
        images.append(flat(inputs.views))
    encoded = encode(model, images)
    num_ann = inputs.crops[0].shape[0]
    crop_features = jnp.concatenate(
        [
            jnp.swapaxes(pooled.reshape(num_ann, c.shape[1], -1), 0, 1)
            for (_, pooled), c in zip(encoded, inputs.crops, strict=False)
        ],
        axis=0,
    )  # [m, Ba, D]
    # g embeds the crops and the bootstrap views in one call, so that a head BatchNorm
    # (`model.head_batch_norm`) normalises both with the same batch statistics (the rewards
    # compare the two) and updates its running statistics once per forward pass.
    m, num_ann, width = crop_features.shape
    features = crop_features.reshape(m * num_ann, width)
    if inputs.views is not None:
        view_tokens, view_pooled = encoded[-1]
        features = jnp.concatenate([features, view_pooled], axis=0)
    queries = model.base_query(features)
    crop_queries = queries[: m * num_ann].reshape(m, num_ann, -1)
    base_psi, ab_psi = objective.embeddings(model, crop_features, crop_queries, ann_batch)
    out = Outputs(
        crop_features=crop_features, crop_queries=crop_queries, base_psi=base_psi, ab_psi=ab_psi
    )
    if inputs.views is None:
        return out
    b, n, q, t = inputs.tokens.shape
    tokens = inputs.tokens.reshape(b * n, q, t)
    if grid is not None:  # the grid's queries ride along: Q values of a query never mix
        tokens = jnp.concatenate([tokens, jnp.broadcast_to(grid, (b * n, *grid.shape))], axis=1)
    logits = model.value_logits(view_tokens, tokens, ab_psi).reshape(b, n, tokens.shape[1], -1)
    return out.replace(
        view_queries=queries[m * num_ann :].reshape(b, n, -1),
        q_logits=logits[:, :, :q],
        grid_q_logits=logits[:, :, q:] if grid is not None else None,
    )


def value_targets(config, objective: BaseObjective, target, target_out: Outputs, extras, step):
    """(rewards [B, n, A], targets [B, n, n-1, A], bootstrap share [B, n, n-1]) from the
    target network's outputs (stop-gradient)."""
    obj = config.objective
    reward_logits = objective.reward_logits(
        target, target_out.view_queries, target_out.base_psi, extras, step
    )
    rewards = jax.lax.stop_gradient(bootstrap.probabilities(reward_logits, obj.divergence))
    next_max = None
    if obj.gamma:
        as_probs = lambda x: None if x is None else bootstrap.probabilities(x, obj.divergence)
        next_max = bootstrap.max_next_values(
            as_probs(target_out.q_logits) if obj.next_actions != "grid" else None,
            as_probs(target_out.grid_q_logits),
            exclude_return=obj.exclude_return,
        )
    targets, share = bootstrap.bootstrap_targets(rewards, next_max, obj.gamma, obj.divergence)
    return rewards, targets, share


def uses_ema_network(config, objective: BaseObjective) -> bool:
    """Whether the step reads the EMA network: AB's target, or the base method's teacher."""
    ab_target = config.objective.ab_weight > 0 and config.ema.enabled
    return ab_target or objective.teacher_is_ema()


class Networks(NamedTuple):
    """Both networks' forward passes on one step's inputs (see `run_networks`)."""

    objective: BaseObjective
    inputs: Inputs
    model: Any  # the online network (nnx module over the traced params)
    online: Outputs
    teacher: Outputs | None  # the base loss's teacher (DINO), stop-gradient
    target: Any  # AB's target network: the EMA one, or the online one (ablation)
    target_out: Outputs | None  # its outputs, stop-gradient (None without bootstrapping)


def run_networks(graphdef, config, params, target_params, batch) -> Networks:
    """Renders the step's views and crops and runs the online network, and the EMA network
    where AB's target or the base method's teacher needs it."""
    obj = config.objective
    objective = make_objective(config)
    use_bootstrap = obj.ab_weight > 0
    ann = batch["annotation"]
    inputs = render_inputs(config, objective, batch)
    grid = grid_tokens(config) if use_bootstrap and obj.next_actions != "views" else None

    # Training: BatchNorms (a projection head's, `model.head_batch_norm`) normalise with the
    # batch's statistics, in both networks (as BYOL's and DINO's teachers do).
    model = use_batch_statistics(from_plain_params(graphdef, params))
    # Without AB's target network (the ablation) the online network scores the grid too.
    online = forward(model, objective, inputs, ann, None if config.ema.enabled else grid)
    ema_model = ema_out = None
    if uses_ema_network(config, objective):
        ema_model = use_batch_statistics(from_plain_params(graphdef, target_params))
        ema_out = jax.lax.stop_gradient(forward(ema_model, objective, inputs, ann, grid))
    teacher = None
    if objective.uses_teacher:
        teacher = ema_out if objective.teacher_is_ema() else jax.lax.stop_gradient(online)
    target = target_out = None
    if use_bootstrap:
        if config.ema.enabled:
            target, target_out = ema_model, ema_out
        else:  # Ablation: targets from the online network, stop-gradient.
            target, target_out = model, jax.lax.stop_gradient(online)
    return Networks(objective, inputs, model, online, teacher, target, target_out)


def compute_losses(graphdef, config, params, target_params, extras, batch, step=0):
    """(loss, (metrics, the objective's next extras, the online network's new BatchNorm
    running statistics)). Gradients flow into `params` only.

    batch: {"annotation": {"image", "index", [label | caption_bytes]},
            "bootstrap": {"image", "index"} (absent when objective.ab_weight == 0)}.
    step: the update's step (schedules inside objectives, e.g. DINO's teacher temperature).
    """
    obj = config.objective
    nets = run_networks(graphdef, config, params, target_params, batch)
    objective, model, online = nets.objective, nets.model, nets.online
    base_loss, base_metrics = objective.base_loss(
        model, online, nets.teacher, batch["annotation"], extras, step
    )
    metrics = {
        # ln of the number of annotations a crop is scored against (the loss at chance); an
        # objective that scores against other candidates says so in its own metrics.
        "base/max_entropy": jnp.log(jnp.asarray(online.base_psi.shape[0], jnp.float32)),
        **base_metrics,
        "base/loss": base_loss,
        "base/temperature": model.base_temperature(),
    }
    loss = obj.base_weight * base_loss
    if nets.target_out is not None:
        rewards, targets, share = value_targets(
            config, objective, nets.target, nets.target_out, extras, step
        )
        ab_loss = bootstrap.bootstrap_loss(online.q_logits, targets, obj.divergence)
        loss = loss + obj.ab_weight * ab_loss
        metrics.update(
            bootstrap.bootstrap_metrics(
                online.q_logits, targets, rewards, share, nets.inputs.boxes, obj.divergence
            )
        )
        metrics["ab/loss"] = ab_loss
        metrics["ab/temperature"] = model.ab_temperature()
    metrics["loss"] = loss
    return loss, (metrics, objective.update_extras(extras, nets.teacher), batch_stats(model))


def micro_batches(batch, count: int):
    """Every leaf [B, ...] -> [count, B / count, ...]; micro-batch k holds examples k, k +
    count, k + 2 count, ... (strided, so each device's share of a data-sharded batch splits
    into its own share of every micro-batch: no data moves between devices)."""
    return jax.tree.map(
        lambda x: jnp.moveaxis(x.reshape(x.shape[0] // count, count, *x.shape[1:]), 1, 0), batch
    )


def accumulated_gradients(grad_fn, params, batch, count: int):
    """Gradient accumulation (`optimizer.accumulate_steps`): the mean gradient and metrics of
    `count` micro-batches, computed one after another (`lax.scan`), so the activations of one
    micro-batch at a time are held. Every micro-batch sees the step's parameters, target
    network and objective state; the new objective state and BatchNorm running statistics are
    the means of the micro-batches' (for DINO's centre, an EMA of the teacher's mean output,
    that is the whole batch's; BN statistics are each micro-batch's). For a
    loss that is a mean over examples the gradient is the whole batch's; contrastive losses
    see their negatives within a micro-batch only.
    """

    def body(grads_sum, micro):
        (_, aux), grads = grad_fn(params, micro)
        return jax.tree.map(jnp.add, grads_sum, grads), aux

    zeros = jax.tree.map(jnp.zeros_like, params)
    grads, aux = jax.lax.scan(body, zeros, micro_batches(batch, count))
    mean = lambda x: jnp.mean(x, axis=0).astype(x.dtype)  # noqa: E731
    return (jax.tree.map(lambda g: g / count, grads), *jax.tree.map(mean, aux))


def make_update_step(graphdef, config, optimizer: optax.GradientTransformation) -> Callable:
    """update(state, batch) -> (state, metrics); pure, to be jitted with shardings."""

    objective = make_objective(config)

    accumulate = int(config.optimizer.get("accumulate_steps", 1) or 1)

    def gradients(state: TrainState, batch):
        """(grads, metrics, extras, BN statistics) of the whole batch, or of its micro-batches
        in turn."""
        grad_fn = jax.value_and_grad(
            lambda p, b: compute_losses(
                graphdef, config, p, state.target_params, state.extras, b, state.step
            ),
            has_aux=True,
        )
        if accumulate == 1:
            (_, aux), grads = grad_fn(state.params, batch)
            return grads, *aux
        return accumulated_gradients(grad_fn, state.params, batch, accumulate)

    def update(state: TrainState, batch) -> tuple[TrainState, dict]:
        grads, metrics, extras, stats = gradients(state, batch)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        updates = objective.mask_updates(updates, state.step)
        params = clamp_temperatures(optax.apply_updates(state.params, updates))
        params = with_batch_stats(params, stats)  # no gradient: the forward pass sets them
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
        extras=make_objective(config).init_extras(),
    )
