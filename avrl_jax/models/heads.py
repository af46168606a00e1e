"""Embedding heads: L2-normalised projections, class embeddings and learned temperatures.

Scores between two unit vectors are cosines in [-1, 1]; a learned temperature (a CLIP-style
logit scale) turns them into logits: `logits = t * <u, v>`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

_dense_init = nnx.initializers.xavier_uniform()
_zeros = nnx.initializers.zeros_init()


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-6) -> jax.Array:
    """`x / max(||x||, eps)` along `axis`; finite value and gradient at x = 0."""
    sq_norm = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
    return x * jax.lax.rsqrt(jnp.maximum(sq_norm, eps * eps))


class ProjectionHead(nnx.Module):
    """MLP `Linear-GELU-...-Linear` (`num_layers` Linears), then L2 normalisation.

    `f32[..., in_dim] -> f32[..., out_dim]` with unit norm. Used as the SimCLR base projection
    g(x) and as the annotation embedding psi_ab of SimCLR crops.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        num_layers: int = 2,
        *,
        rngs: nnx.Rngs,
    ):
        if num_layers < 1:
            raise ValueError(f"ProjectionHead needs num_layers >= 1, got {num_layers}")
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nnx.List(
            [
                nnx.Linear(d_in, d_out, kernel_init=_dense_init, bias_init=_zeros, rngs=rngs)
                for d_in, d_out in zip(dims[:-1], dims[1:], strict=True)
            ]
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        """`[..., in_dim] -> [..., out_dim]`, unit norm along the last axis."""
        for i, layer in enumerate(self.layers):
            if i > 0:
                x = jax.nn.gelu(x)
            x = layer(x)
        return l2_normalize(x)


class ClassEmbedding(nnx.Module):
    """One learned unit vector per class: `() -> f32[num_classes, dim]` (for `labels`).

    Rows start as standard normals (uniform directions, norm ~sqrt(dim)) so an Adam step of size
    lr moves each direction by about lr, as for the other weights.
    """

    def __init__(self, num_classes: int, dim: int, *, rngs: nnx.Rngs):
        self.embedding = nnx.Param(jax.random.normal(rngs.params(), (num_classes, dim)))

    def __call__(self) -> jax.Array:
        """`f32[num_classes, dim]`, unit-norm rows."""
        return l2_normalize(self.embedding[...])


class Temperature(nnx.Module):
    """A learned log-temperature: `() -> min(exp(log_t), max_value)`, a scalar.

    As in CLIP, the clamp stops the gradient once the limit is reached (the scale stays there
    unless the loss pushes it down).
    """

    def __init__(self, init: float, max_value: float = 100.0, rngs: nnx.Rngs | None = None):
        del rngs  # deterministic initialisation; accepted for a uniform constructor signature
        if not 0.0 < init <= max_value:
            raise ValueError(f"Temperature needs 0 < init <= max_value, got {init=}, {max_value=}")
        self.max_value = max_value
        self.log_t = nnx.Param(jnp.asarray(math.log(init), jnp.float32))

    def __call__(self) -> jax.Array:
        """Scalar f32 in (0, max_value]."""
        return jnp.minimum(jnp.exp(self.log_t[...]), self.max_value)
