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


def use_batch_statistics(module: nnx.Module) -> nnx.Module:
    """Switch every BatchNorm in `module` to the statistics of the batch it is given (training),
    which also updates their running statistics; built modules use the running ones."""
    module.set_attributes(use_running_average=False, raise_if_not_found=False)
    return module


class ProjectionHead(nnx.Module):
    """MLP `Linear-GELU-...-Linear` (`num_layers` Linears), then L2 normalisation.

    `f32[..., in_dim] -> f32[..., out_dim]` with unit norm. Used as the SimCLR base projection
    g(x) and as the annotation embedding psi_ab of SimCLR crops.

    batch_norm: standardise the input features over the batch first (BatchNorm without scale
    and bias: the Linear after it has both), as BN in SimCLR's projection head does. It removes
    the component that all pooled features share at init (README "Does it work?", fifth
    round). Over every leading axis; within `jax.jit` on a data-sharded batch that is the
    global batch (synchronised BN). Built heads use the running statistics (momentum 0.9 per
    call), so a single crop embeds the same in any batch; the update step switches them to
    the batch's with `use_batch_statistics` and carries the running ones in the train state.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        num_layers: int = 2,
        *,
        batch_norm: bool = False,
        rngs: nnx.Rngs,
    ):
        if num_layers < 1:
            raise ValueError(f"ProjectionHead needs num_layers >= 1, got {num_layers}")
        self.norm = (
            nnx.BatchNorm(
                in_dim,
                use_running_average=True,
                use_scale=False,
                use_bias=False,
                momentum=0.9,
                rngs=rngs,
            )
            if batch_norm
            else None
        )
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nnx.List(
            [
                nnx.Linear(d_in, d_out, kernel_init=_dense_init, bias_init=_zeros, rngs=rngs)
                for d_in, d_out in zip(dims[:-1], dims[1:], strict=True)
            ]
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        """`[..., in_dim] -> [..., out_dim]`, unit norm along the last axis."""
        if self.norm is not None:
            x = self.norm(x)
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


# Bounds of every learned temperature, kept on the parameter (see `clamp_temperatures`).
TEMPERATURE_RANGE = (0.01, 100.0)


class Temperature(nnx.Module):
    """A learned log-temperature: `() -> exp(log_t)`, a scalar.

    The bound is kept on the parameter, not the output: `clamp_temperatures` projects `log_t`
    back into `TEMPERATURE_RANGE` after every optimizer step (as CLIP clamps its logit scale).
    A clamped output (`min(exp(log_t), max)`) would have no gradient past the bound, so the
    parameter could drift there and the scale could never move back.
    """

    def __init__(self, init: float, rngs: nnx.Rngs | None = None):
        del rngs  # deterministic initialisation; accepted for a uniform constructor signature
        lo, hi = TEMPERATURE_RANGE
        if not lo <= init <= hi:
            raise ValueError(f"Temperature needs {lo} <= init <= {hi}, got {init=}")
        self.log_t = nnx.Param(jnp.asarray(math.log(init), jnp.float32))

    def __call__(self) -> jax.Array:
        """Scalar f32 in TEMPERATURE_RANGE (after `clamp_temperatures`)."""
        return jnp.exp(self.log_t[...])


def clamp_temperatures(params):
    """Projects every `log_t` leaf of a plain parameter dict into log(TEMPERATURE_RANGE)."""
    lo, hi = (math.log(v) for v in TEMPERATURE_RANGE)

    def clamp(path, leaf):
        is_temperature = getattr(path[-1], "key", None) == "log_t"
        return jnp.clip(leaf, lo, hi) if is_temperature else leaf

    return jax.tree_util.tree_map_with_path(clamp, params)
