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
