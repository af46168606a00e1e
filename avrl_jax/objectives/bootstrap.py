"""The annotation-bootstrapping (AB) objective: Bellman targets over views and the value loss.

Notation (DESIGN §1.2): B images, n views each, A annotations. For the ordered pair (i, j),
i != j, the action a_ij moves view i to view j; slot s of view i holds j = s if s < i else s + 1
(`avrl_jax.env.other_view_index`).

    y_ij(l) = (1 - gamma) * p_target(l | x_j) + gamma * max_k Q_target(l | x_j, a_jk)
    L_AB    = mean_{i != j} D(Q(. | x_i, a_ij), y_ij(.))

Q is read as a probability: a softmax over annotations for the soft cross-entropy divergence,
a per-annotation sigmoid for the binary cross-entropy one.
"""

import jax
import jax.numpy as jnp
import numpy as np

DIVERGENCES = ("softmax", "bce")


def check_divergence(divergence: str) -> None:
    if divergence not in DIVERGENCES:
        raise ValueError(
            f"objective.divergence={divergence!r} is not valid; choose one of {DIVERGENCES}"
        )


def value_probabilities(logits: jax.Array, divergence: str) -> jax.Array:
    """Q(l | x, a) as probabilities. logits: [..., A] -> [..., A]."""
    check_divergence(divergence)
    if divergence == "softmax":
        return jax.nn.softmax(logits, axis=-1)
    return jax.nn.sigmoid(logits)


def other_views(num_views: int) -> np.ndarray:
    """int32 [n, n-1]: the view j held in slot s of view i (j = s if s < i else s + 1)."""
    slots = np.arange(num_views - 1)[None, :]
    views = np.arange(num_views)[:, None]
    return (slots + (slots >= views)).astype(np.int32)


def bootstrap_targets(
    rewards: jax.Array, next_values: jax.Array, gamma: float, divergence: str
) -> jax.Array:
    """Bellman targets for every ordered pair of views.

    Args:
      rewards: [B, n, A] p_target(l | x_j), the annotation likelihoods of each view.
      next_values: [B, n, n-1, A] Q_target(l | x_j, a_jk) as probabilities, for every action
        from view j to the other views k of the same image.
      gamma: discount in [0, 1]; 0 is the one-step form (predict the next view's annotations).
      divergence: "softmax" renormalises each target over annotations; "bce" keeps per-annotation
        probabilities.

    Returns:
      [B, n, n-1, A] the target y_ij for the action in slot s of view i (stop-gradient).
    """
    num_views = rewards.shape[1]
    view_values = (1.0 - gamma) * rewards
    if gamma:
        view_values = view_values + gamma * jnp.max(next_values, axis=2)
    targets = view_values[:, other_views(num_views)]  # [B, n, n-1, A]
    if divergence == "softmax":
        targets = targets / jnp.sum(targets, axis=-1, keepdims=True)
    return jax.lax.stop_gradient(targets)


def bootstrap_loss(logits: jax.Array, targets: jax.Array, divergence: str) -> jax.Array:
    """Mean divergence between Q(. | x_i, a_ij) and y_ij. logits, targets: [..., A] -> scalar."""
    check_divergence(divergence)
    if divergence == "softmax":
        return -jnp.mean(jnp.sum(targets * jax.nn.log_softmax(logits, axis=-1), axis=-1))
    # Per-annotation binary cross-entropy, summed over annotations like the soft one.
    log_p, log_not_p = jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits)
    return -jnp.mean(jnp.sum(targets * log_p + (1.0 - targets) * log_not_p, axis=-1))


def bootstrap_metrics(logits: jax.Array, targets: jax.Array) -> dict[str, jax.Array]:
    """Diagnostics: target entropy (collapse shows as entropy near ln A) and argmax agreement."""
    normalised = targets / jnp.sum(targets, axis=-1, keepdims=True)
    entropy = -jnp.sum(normalised * jnp.log(jnp.clip(normalised, 1e-12)), axis=-1)
    agreement = jnp.argmax(logits, axis=-1) == jnp.argmax(targets, axis=-1)
    return {
        "ab/target_entropy": jnp.mean(entropy),
        "ab/max_entropy": jnp.log(jnp.asarray(targets.shape[-1], jnp.float32)),
        "ab/agreement": jnp.mean(agreement.astype(jnp.float32)),
    }
