"""Base objectives: the losses that define the annotations and their likelihood p(l | x).

Every base objective scores a view x against annotation embeddings psi(l) with a cosine
similarity and a learned temperature t: logits = t * <g(x), psi(l)>, p(l | x) = softmax_l.
"""

import jax
import jax.numpy as jnp
import optax


def annotation_logits(queries: jax.Array, annotations: jax.Array, temperature: jax.Array):
    """t * <q, psi>. queries: [..., d], annotations: [A, d] -> [..., A]."""
    return temperature * jnp.einsum("...d,ad->...a", queries, annotations)


def info_nce(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Symmetric InfoNCE on a square similarity matrix whose positives are on the diagonal.

    logits: [N, N], row a scores query a against every annotation. Returns (loss, accuracy).
    """
    labels = jnp.arange(logits.shape[0])
    rows = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    cols = optax.softmax_cross_entropy_with_integer_labels(logits.T, labels)
    accuracy = jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32))
    return 0.5 * (jnp.mean(rows) + jnp.mean(cols)), accuracy


def label_cross_entropy(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Cross-entropy against class labels. logits: [N, C], labels: int [N]. Returns (loss, acc)."""
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    accuracy = jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32))
    return jnp.mean(loss), accuracy


def dino_teacher_probabilities(
    scores: jax.Array, center: jax.Array, temperature: float
) -> jax.Array:
    """DINO's teacher: centre then sharpen. scores: [..., K] prototype scores, center: [K]."""
    return jax.nn.softmax((scores - center) / temperature, axis=-1)


def dino_loss(student_logits: jax.Array, teacher_probs: jax.Array) -> jax.Array:
    """Cross-entropy from every teacher crop to every *other* student crop.

    student_logits, teacher_probs: [m, N, K] for m crops of N images. Returns a scalar.
    """
    num_crops = student_logits.shape[0]
    log_student = jax.nn.log_softmax(student_logits, axis=-1)
    # cross[a, b] = mean_n CE(teacher crop b, student crop a)
    cross = -jnp.einsum("bnk,ank->ab", teacher_probs, log_student) / student_logits.shape[1]
    off_diagonal = 1.0 - jnp.eye(num_crops)
    return jnp.sum(cross * off_diagonal) / jnp.sum(off_diagonal)


def update_center(center: jax.Array, scores: jax.Array, momentum: float) -> jax.Array:
    """EMA of the teacher's mean scores: center <- m * center + (1 - m) * mean(scores)."""
    batch_mean = jnp.mean(scores.reshape(-1, scores.shape[-1]), axis=0)
    return momentum * center + (1.0 - momentum) * batch_mean
