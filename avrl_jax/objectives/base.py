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
    """Cross-entropy from every teacher crop to every *other* student crop (DINO multi-crop).

    student_logits: [m_s, N, K] for m_s crops of N images; teacher_probs: [m_t, N, K] for the
    first m_t of those crops (the global crops; m_t <= m_s). Teacher crop b and student crop b
    are the same crop, so the pairs (a, b) with a == b are left out, as in DINO. Returns the
    mean over the m_t * m_s - m_t remaining pairs.
    """
    num_student, num_teacher = student_logits.shape[0], teacher_probs.shape[0]
    log_student = jax.nn.log_softmax(student_logits, axis=-1)
    # cross[a, b] = mean_n CE(teacher crop b, student crop a)
    cross = -jnp.einsum("bnk,ank->ab", teacher_probs, log_student) / student_logits.shape[1]
    other_crop = 1.0 - jnp.eye(num_student, num_teacher)
    return jnp.sum(cross * other_crop) / jnp.sum(other_crop)


def nt_xent(queries: jax.Array, temperature: jax.Array) -> tuple[jax.Array, jax.Array]:
    """SimCLR's NT-Xent: each of the 2N crops against the other 2N - 1; its positive is the other
    crop of its image, the 2N - 2 crops of the other images are its negatives.

    queries: [2, N, d] unit-norm embeddings of the two crops of N images. Returns (loss,
    accuracy of picking the positive).
    """
    num = queries.shape[1]
    z = queries.reshape(2 * num, -1)
    logits = temperature * (z @ z.T)
    logits = jnp.where(jnp.eye(2 * num, dtype=bool), -jnp.inf, logits)  # never itself
    positives = jnp.concatenate([jnp.arange(num, 2 * num), jnp.arange(num)])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, positives)
    accuracy = jnp.mean((jnp.argmax(logits, axis=-1) == positives).astype(jnp.float32))
    return jnp.mean(loss), accuracy


def update_center(center: jax.Array, scores: jax.Array, momentum: float) -> jax.Array:
    """EMA of the teacher's mean scores: center <- m * center + (1 - m) * mean(scores)."""
    batch_mean = jnp.mean(scores.reshape(-1, scores.shape[-1]), axis=0)
    return momentum * center + (1.0 - momentum) * batch_mean
