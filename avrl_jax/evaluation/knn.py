"""Weighted k-nearest-neighbour classification on frozen features (cosine similarity), as in
DINO (Caron et al. 2021, `eval_knn.py`): each of the k nearest train examples votes for its
label with weight exp(similarity / temperature); the class with the largest vote wins.

Memory never depends on N_test x N_train: test features are processed in fixed-size chunks
(a Python loop over one compiled function; the last chunk padded), and inside a chunk the
train set is scanned in fixed-size chunks, merging each chunk's top-k into a running top-k
(`lax.scan`). Peak memory is `test_chunk x (train_chunk + k)` similarities. Several k are
evaluated from one top-max(k) search (`lax.top_k` returns neighbours sorted).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit length: f32[N, D] -> f32[N, D] (zero rows stay zero)."""
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


@functools.partial(jax.jit, static_argnames=("k",))
def _top_k_neighbours(
    queries: jax.Array, train_chunks: jax.Array, valid: jax.Array, k: int
) -> tuple[jax.Array, jax.Array]:
    """The k most similar train rows of each query.

    Args:
      queries: f32[q, D] unit rows.
      train_chunks: f32[T, c, D] unit rows, the train set cut into T chunks of c (padded).
      valid: bool[T, c], False on padding rows.
      k: neighbours kept.

    Returns:
      (similarities f32[q, k] descending, train indices int32[q, k] into the flattened chunks).
    """
    q, chunk = queries.shape[0], train_chunks.shape[1]
    init = (jnp.full((q, k), -jnp.inf), jnp.zeros((q, k), jnp.int32))

    def merge(carry, inputs):
        best_sim, best_idx = carry
        t, rows, row_valid = inputs
        sim = jnp.where(row_valid[None, :], queries @ rows.T, -jnp.inf)  # [q, c]
        idx = jnp.broadcast_to(t * chunk + jnp.arange(chunk, dtype=jnp.int32), sim.shape)
        sim, idx = jnp.concatenate([best_sim, sim], 1), jnp.concatenate([best_idx, idx], 1)
        best_sim, pos = jax.lax.top_k(sim, k)
        return (best_sim, jnp.take_along_axis(idx, pos, axis=1)), None

    steps = jnp.arange(train_chunks.shape[0], dtype=jnp.int32)
    (best_sim, best_idx), _ = jax.lax.scan(merge, init, (steps, train_chunks, valid))
    return best_sim, best_idx


def _pad_rows(x: np.ndarray, multiple: int) -> np.ndarray:
    pad = -x.shape[0] % multiple
    return np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x


def knn_predict(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    num_classes: int,
    *,
    ks: Sequence[int] = (20,),
    temperature: float = 0.07,
    test_chunk: int = 256,
    train_chunk: int = 8192,
) -> dict[int, np.ndarray]:
    """Predicted labels of the test rows for each k: {k: int32[N_test]}.

    Args:
      train_features: f32[N, D]; train_labels: int32[N].
      test_features: f32[M, D].
      num_classes: labels lie in [0, num_classes).
      ks: numbers of neighbours (each <= N).
      temperature: vote weight exp(cosine similarity / temperature).
      test_chunk, train_chunk: chunk sizes (memory ~ test_chunk x train_chunk).
    """
    n = train_features.shape[0]
    k_max = max(ks)
    if min(ks) < 1 or k_max > n:
        raise ValueError(f"knn.k must be in [1, {n}] (the train set's size), got {list(ks)}")
    train_chunk = min(train_chunk, n)
    train = _pad_rows(l2_normalise(train_features), train_chunk)
    valid = (np.arange(train.shape[0]) < n).reshape(-1, train_chunk)
    train = jax.device_put(train.reshape(-1, train_chunk, train.shape[-1]))
    labels = jnp.asarray(_pad_rows(np.asarray(train_labels, np.int32), train_chunk))
    test = l2_normalise(test_features)

    @jax.jit
    def votes(sim: jax.Array, idx: jax.Array) -> jax.Array:
        """[q, k_max] neighbours -> predictions int32[len(ks), q]."""
        weighted = jnp.exp(sim / temperature)[..., None] * jax.nn.one_hot(labels[idx], num_classes)
        scores = jnp.stack([weighted[:, :k].sum(axis=1) for k in ks])  # [len(ks), q, C]
        return jnp.argmax(scores, axis=-1).astype(jnp.int32)

    predictions = []
    for start in range(0, test.shape[0], test_chunk):
        queries = test[start : start + test_chunk]
        num_valid = queries.shape[0]
        sim, idx = _top_k_neighbours(_pad_rows(queries, test_chunk), train, valid, k=k_max)
        predictions.append(np.asarray(votes(sim, idx))[:, :num_valid])
    stacked = np.concatenate(predictions, axis=1)
    return {k: stacked[i] for i, k in enumerate(ks)}


def knn_accuracy(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    num_classes: int,
    **kwargs,
) -> dict[str, float]:
    """Test accuracy per k: {"accuracy_k20": ..., ...}. kwargs: as `knn_predict`."""
    predictions = knn_predict(train_features, train_labels, test_features, num_classes, **kwargs)
    test_labels = np.asarray(test_labels)
    return {f"accuracy_k{k}": float(np.mean(p == test_labels)) for k, p in predictions.items()}
