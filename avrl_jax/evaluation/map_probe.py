"""Attention-pooling (MAP) probe on frozen patch tokens.

The head (big_vision's `MAPHead`, then a linear classifier): one learned query cross-attends to
the patch tokens, `x = MHA(query, tokens)`, then `x = x + MLP(LN(x))`, then `Linear(D -> C)`.
Unlike the linear probe it can read *where* in the image something is, so it shows what the
patch tokens hold beyond the pooled feature (the paper reports MAP probes next to linear ones).

Training: AdamW with linear warmup and cosine decay, mini-batches of cached tokens drawn
without replacement each epoch on the host (the tokens stay in host memory; only a batch at a
time goes to the device), one jitted update per step. Evaluation in fixed-size padded batches.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from avrl_jax.evaluation.head_training import padded_map, train_head, train_subset
from avrl_jax.models.params import from_plain_params, to_plain_params
from avrl_jax.models.vit import MlpBlock, attention


class MAPClassifier(nnx.Module):
    """`tokens f32[N, P, D] -> logits f32[N, C]` by multi-head attention pooling."""

    def __init__(
        self, width: int, num_classes: int, num_heads: int, mlp_dim: int, *, rngs: nnx.Rngs
    ):
        if width % num_heads:
            raise ValueError(f"map.num_heads={num_heads} must divide the token width {width}")
        self.query = nnx.Param(nnx.initializers.xavier_uniform()(rngs.params(), (1, 1, width)))
        self.attn = attention(width, num_heads, rngs=rngs)
        self.norm = nnx.LayerNorm(width, epsilon=1e-6, rngs=rngs)
        self.mlp = MlpBlock(width, mlp_dim, rngs=rngs)
        self.classifier = nnx.Linear(width, num_classes, rngs=rngs)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        """`tokens [N, P, D]` (any float dtype) -> `logits f32[N, C]`."""
        tokens = tokens.astype(jnp.float32)
        query = jnp.broadcast_to(self.query[...], (tokens.shape[0], 1, tokens.shape[-1]))
        x = self.attn(query, tokens)  # [N, 1, D]
        x = x + self.mlp(self.norm(x))
        return self.classifier(x[:, 0])


@functools.partial(jax.jit, static_argnums=0)
def _classify(graphdef: nnx.GraphDef, params: dict, tokens: jax.Array) -> jax.Array:
    return jnp.argmax(from_plain_params(graphdef, params)(tokens), axis=-1)


def predict(
    graphdef: nnx.GraphDef, params: dict, tokens: np.ndarray, batch_size: int = 512
) -> np.ndarray:
    """Predicted labels int32[N] of `tokens [N, P, D]`, in fixed-size padded batches (one
    compilation whatever N)."""
    classify = functools.partial(_classify, graphdef, params)
    return padded_map(classify, tokens, batch_size).astype(np.int32)


def map_probe(
    train_tokens: np.ndarray,
    train_labels: np.ndarray,
    test_tokens: np.ndarray,
    test_labels: np.ndarray,
    num_classes: int,
    *,
    num_heads: int = 4,
    mlp_dim: int | None = None,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-4,
    steps: int = 1000,
    warmup_steps: int = 50,
    batch_size: int = 256,
    seed: int = 0,
) -> dict[str, float]:
    """Trains a MAP head on `train_tokens [N, P, D]` and reports its accuracy.

    Args:
      train_tokens, test_tokens: [N, P, D], [M, P, D] patch tokens (float32 or bfloat16).
      train_labels, test_labels: int32[N], int32[M] in [0, num_classes).
      num_heads: attention heads (must divide D); mlp_dim: default 4 D.
      learning_rate, weight_decay, steps, warmup_steps, batch_size: AdamW, warmup + cosine.
      seed: initialisation and mini-batch order.

    Returns:
      {"accuracy": test accuracy, "train_accuracy": accuracy on (up to 2,000) train examples}.
    """
    width = train_tokens.shape[-1]
    head = MAPClassifier(width, num_classes, num_heads, mlp_dim or 4 * width, rngs=nnx.Rngs(seed))
    graphdef, params = to_plain_params(head)
    train_labels = np.asarray(train_labels, np.int32)

    def loss_fn(classifier, tokens, labels):
        logits = classifier(tokens)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    params = train_head(
        graphdef,
        params,
        loss_fn,
        train_tokens,
        train_labels,
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        warmup_steps=warmup_steps,
        seed=seed,
    )
    seen = train_subset(train_tokens.shape[0], seed)
    train_predictions = predict(graphdef, params, train_tokens[seen])
    test_predictions = predict(graphdef, params, test_tokens)
    return {
        "accuracy": float(np.mean(test_predictions == np.asarray(test_labels))),
        "train_accuracy": float(np.mean(train_predictions == train_labels[seen])),
    }
