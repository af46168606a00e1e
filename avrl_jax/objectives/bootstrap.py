"""The annotation-bootstrapping (AB) objective: Bellman targets over views and the value loss.

Notation (docs/design.md §1.2): B images, n views each, A annotations. For the ordered pair (i, j),
i != j, the action a_ij moves view i to view j; slot s of view i holds j = s if s < i else s + 1
(`avrl_jax.env.other_view_index`).

    y_ij(l) = (1 - gamma) * p_target(l | x_j) + gamma * max_{a'} Q_target(l | x_j, a')
    L_AB    = mean_{i != j} D(Q(. | x_i, a_ij), y_ij(.))

The candidate set of `max_a'` (`objective.next_actions`): `views`, the actions from x_j to the
other in-batch views of its image (optionally without the one back to x_i, `exclude_return`);
`grid`, a fixed grid of candidate boxes relative to x_j, scored by the target value head on
x_j's patch tokens alone; or `both`.

Q, the rewards and the targets are probabilities: a softmax over annotations for the soft
cross-entropy divergence; per-annotation sigmoids (SigLIP-style) for binary cross-entropy.
"""

import jax
import jax.numpy as jnp
import numpy as np

from avrl_jax.env.boxes import box_iou, other_view_index

DIVERGENCES = ("softmax", "bce")
NEXT_ACTIONS = ("views", "grid", "both")
# Source-target IoU bins of the value-accuracy diagnostic (the paper's value-accuracy figure).
IOU_BINS = ((0.0, 0.01), (0.01, 0.2), (0.2, 0.5), (0.5, 0.8), (0.8, 1.01))


def check_divergence(divergence: str) -> None:
    if divergence not in DIVERGENCES:
        raise ValueError(
            f"objective.divergence={divergence!r} is not valid; choose one of {DIVERGENCES}"
        )


def probabilities(logits: jax.Array, divergence: str) -> jax.Array:
    """Q(l | x, a) or p(l | x) as probabilities. logits: [..., A] -> [..., A]."""
    check_divergence(divergence)
    if divergence == "softmax":
        return jax.nn.softmax(logits, axis=-1)
    return jax.nn.sigmoid(logits)


def _slot_of(num_views: int) -> np.ndarray:
    """int32 [n, n-1]: for source i and slot s (target j), the slot of i among j's actions."""
    sources = np.arange(num_views)[:, None]
    return np.where(sources < other_view_index(num_views), sources, sources - 1).astype(np.int32)


def max_next_values(
    view_values: jax.Array | None, grid_values: jax.Array | None, exclude_return: bool = False
) -> jax.Array:
    """max_{a'} Q_target(l | x_j, a') for every pair (i, j), per annotation.

    Args:
      view_values: [B, n, n-1, A] Q_target(l | x_j, a_jk) for the in-batch actions of view j,
        or None (grid only).
      grid_values: [B, n, G, A] Q_target on the candidate grid of view j, or None.
      exclude_return: leave out the action from x_j back to x_i (needs n >= 3 or a grid).

    Returns:
      [B, n, n-1, A]: entry [i, s] is the max over the candidates of j = other_view_index[i, s].
    """
    values = view_values if view_values is not None else grid_values
    num_views = values.shape[1]
    targets = other_view_index(num_views)
    best = None
    if view_values is not None:
        if exclude_return:
            # The max over k != i: the best of j's actions, or its second best when the best
            # is the action back to i.
            top, slot = jax.lax.top_k(jnp.moveaxis(view_values, 2, -1), 2)  # [B, n, A, 2]
            top, slot = top[:, targets], slot[:, targets]  # [B, n, n-1, A, 2]
            is_return = slot[..., 0] == _slot_of(num_views)[None, :, :, None]
            best = jnp.where(is_return, top[..., 1], top[..., 0])
        else:
            best = jnp.max(view_values, axis=2)[:, targets]
    if grid_values is not None:
        grid_best = jnp.max(grid_values, axis=2)[:, targets]
        best = grid_best if best is None else jnp.maximum(best, grid_best)
    return best


def bootstrap_targets(
    rewards: jax.Array, next_max: jax.Array | None, gamma: float, divergence: str
) -> tuple[jax.Array, jax.Array]:
    """Bellman targets for every ordered pair of views.

    Args:
      rewards: [B, n, A] p_target(l | x_j), the annotation likelihoods of each view.
      next_max: [B, n, n-1, A] from `max_next_values`, or None when gamma == 0.
      gamma: discount in [0, 1); 0 is the one-step form (predict the next view's annotations).
      divergence: "softmax" renormalises each target over annotations; "bce" keeps
        per-annotation probabilities.

    Returns:
      (targets [B, n, n-1, A], the y_ij for the action in slot s of view i (stop-gradient);
       bootstrap_share [B, n, n-1], the part of each target's mass from the bootstrap term).
    """
    num_views = rewards.shape[1]
    reward_term = (1.0 - gamma) * rewards[:, other_view_index(num_views)]
    targets = reward_term
    share = jnp.zeros(reward_term.shape[:-1])
    if gamma:  # static: gamma is a config value
        bootstrap_term = gamma * next_max
        targets = reward_term + bootstrap_term
        share = jnp.sum(bootstrap_term, -1) / jnp.maximum(jnp.sum(targets, -1), 1e-12)
    if divergence == "softmax" and gamma:  # with gamma = 0 the rewards are already normalised
        targets = targets / jnp.sum(targets, axis=-1, keepdims=True)
    return jax.lax.stop_gradient(targets), jax.lax.stop_gradient(share)


def bootstrap_loss(logits: jax.Array, targets: jax.Array, divergence: str) -> jax.Array:
    """Mean divergence between Q(. | x_i, a_ij) and y_ij. logits, targets: [..., A] -> scalar."""
    check_divergence(divergence)
    if divergence == "softmax":
        return -jnp.mean(jnp.sum(targets * jax.nn.log_softmax(logits, axis=-1), axis=-1))
    # Per-annotation binary cross-entropy, summed over annotations like the soft one.
    log_p, log_not_p = jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits)
    return -jnp.mean(jnp.sum(targets * log_p + (1.0 - targets) * log_not_p, axis=-1))


def _entropy(p: jax.Array) -> jax.Array:
    return -jnp.sum(p * jnp.log(jnp.clip(p, 1e-12)), axis=-1)


def target_entropy(targets: jax.Array, divergence: str) -> jax.Array:
    """The loss at Q = y: the entropy of each target (summed binary entropies for BCE)."""
    if divergence == "softmax":
        return _entropy(targets)
    return _entropy(targets) + _entropy(1.0 - targets)


def bootstrap_metrics(
    logits: jax.Array,
    targets: jax.Array,
    rewards: jax.Array,
    share: jax.Array,
    boxes: jax.Array,
    divergence: str,
) -> dict[str, jax.Array]:
    """Diagnostics that tell learning from collapse (logged every logging step).

    Args:
      logits: [B, n, n-1, A] online Q logits; targets: [B, n, n-1, A]; rewards: [B, n, A];
      share: [B, n, n-1] bootstrap share of the targets; boxes: [B, n, 4] the views' boxes.

    Returns scalars:
      ab/kl: loss minus target entropy (0 when Q matches y);
      ab/target_entropy, ab/max_entropy (ln A): a target at ln A carries no information;
      ab/marginal_target_entropy: the entropy of the batch-mean target (collapse to one
        annotation for every view drives it to 0);
      ab/distinct_argmax: how many annotations are some target's argmax (collapse: 1);
      ab/reward_entropy; ab/q_entropy (Q's own softmax entropy; near ln A at initialisation);
      ab/bootstrap_share: the part of the target's mass from gamma * max Q;
      ab/action_sensitivity: Q's spread across a view's actions over its spread across views
        (0 when Q ignores the action);
      ab/agreement: argmax Q == argmax y; ab/value_accuracy/iou_LO-HI: the same by the IoU of
        source and target box.
    """
    num_annotations = targets.shape[-1]
    q = probabilities(logits, divergence)
    normalised = targets / jnp.sum(targets, axis=-1, keepdims=True)
    loss = bootstrap_loss(logits, targets, divergence)
    flat_targets = normalised.reshape(-1, num_annotations)
    argmax_target = jnp.argmax(flat_targets, axis=-1)
    hits = jnp.zeros((num_annotations,), jnp.int32).at[argmax_target].add(1)
    agreement = (jnp.argmax(logits, axis=-1) == jnp.argmax(targets, axis=-1)).astype(jnp.float32)
    action_spread = jnp.mean(jnp.std(q, axis=2))
    view_spread = jnp.mean(jnp.std(jnp.mean(q, axis=2), axis=1))
    metrics = {
        "ab/kl": loss - jnp.mean(target_entropy(targets, divergence)),
        "ab/target_entropy": jnp.mean(_entropy(normalised)),
        "ab/max_entropy": jnp.log(jnp.asarray(num_annotations, jnp.float32)),
        "ab/marginal_target_entropy": _entropy(jnp.mean(flat_targets, axis=0)),
        "ab/distinct_argmax": jnp.sum(hits > 0).astype(jnp.float32),
        "ab/reward_entropy": jnp.mean(_entropy(rewards / jnp.sum(rewards, axis=-1, keepdims=True))),
        "ab/q_entropy": jnp.mean(_entropy(jax.nn.softmax(logits, axis=-1))),
        "ab/bootstrap_share": jnp.mean(share),
        "ab/action_sensitivity": action_spread / jnp.maximum(view_spread, 1e-12),
        "ab/agreement": jnp.mean(agreement),
    }
    num_views = boxes.shape[1]
    iou = box_iou(boxes[:, :, None], boxes[:, other_view_index(num_views)])  # [B, n, n-1]
    for lo, hi in IOU_BINS:
        in_bin = ((iou >= lo) & (iou < hi)).astype(jnp.float32)
        count = jnp.sum(in_bin)
        accuracy = jnp.sum(agreement * in_bin) / jnp.maximum(count, 1.0)
        name = f"ab/value_accuracy/iou_{lo:g}-{min(hi, 1.0):g}"
        metrics[name] = jnp.where(count > 0, accuracy, jnp.nan)
    return metrics
