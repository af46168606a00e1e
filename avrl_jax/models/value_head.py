"""The value head phi_ab of annotation bootstrapping: a Transformer decoder over action queries.

`Q(l | x, a) = t_ab * <phi_ab(x, a), psi_ab(l)>`: this module computes `phi_ab(x, a)` for all
the actions of a view in one pass. Each action (T tokens) becomes one query; the queries
cross-attend to the encoder's patch tokens of `x`.

Two properties the objective relies on:
- Q(x, a) is a function of x and a only. The queries therefore never self-attend to each other:
  each block is `q + CrossAttn(LN(q), memory)`, then `q + MLP(LN(q))`, and attention's softmax
  runs over the patch tokens (keys), separately for each query. Evaluating Q actions together
  or one by one gives the same values.
- The query of an action must know which token sits at which position (the tokens of a box
  move are (dx, dy, w, h) bins: (3, 5, ...) and (5, 3, ...) are different moves). A shared
  token table plus an additive position embedding, summed over positions, would collapse to a
  bag of tokens (the position terms sum to a constant). So each position t has its own token
  table: `token_embed[t, id]`, i.e. embedding of the one-hot concatenation of the T tokens.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from avrl_jax.models.vit import MlpBlock, attention

_dense_init = nnx.initializers.xavier_uniform()
_zeros = nnx.initializers.zeros_init()
_embed_init = nnx.initializers.normal(stddev=0.02)
_LN_EPS = 1e-6


class CrossAttentionBlock(nnx.Module):
    """Pre-LN decoder block, no self-attention: `q + CrossAttn(LN(q), memory)`, `q + MLP(LN(q))`."""

    def __init__(self, width: int, num_heads: int, mlp_dim: int, *, rngs: nnx.Rngs):
        self.norm1 = nnx.LayerNorm(width, epsilon=_LN_EPS, rngs=rngs)
        self.cross_attn = attention(width, num_heads, rngs=rngs)
        self.norm2 = nnx.LayerNorm(width, epsilon=_LN_EPS, rngs=rngs)
        self.mlp = MlpBlock(width, mlp_dim, rngs=rngs)

    def __call__(self, queries: jax.Array, memory: jax.Array) -> jax.Array:
        """`queries [N, Q, W]`, `memory [N, P, W]` -> `[N, Q, W]`."""
        queries = queries + self.cross_attn(self.norm1(queries), memory)
        return queries + self.mlp(self.norm2(queries))


class ValueDecoder(nnx.Module):
    """phi_ab: `(patch_tokens f32[N, P, input_dim], action_tokens int[N, Q, T]) -> f32[N, Q, out]`.

    `out` = `output_dim`. `vocab_size` is the number of ids each token position can take
    (ids in [0, vocab_size)); an id out of range turns that action's output into NaN (loud, not
    silently clamped).
    With `use_action_tokens=False` (the "no action tokens" ablation) every query is the learned
    base query, so all Q outputs of a view are equal; the token tables are then not created.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        tokens_per_action: int,
        width: int,
        depth: int,
        num_heads: int,
        mlp_dim: int,
        input_dim: int,
        output_dim: int,
        use_action_tokens: bool = True,
        rngs: nnx.Rngs,
    ):
        self.vocab_size = vocab_size
        self.tokens_per_action = tokens_per_action
        self.width = width
        self.output_dim = output_dim
        self.use_action_tokens = use_action_tokens

        self.memory_proj = nnx.Linear(
            input_dim, width, kernel_init=_dense_init, bias_init=_zeros, rngs=rngs
        )
        self.base_query = nnx.Param(_embed_init(rngs.params(), (width,)))
        self.token_embed = (
            nnx.Param(_embed_init(rngs.params(), (tokens_per_action, vocab_size, width)))
            if use_action_tokens
            else None
        )
        self.blocks = nnx.List(
            [CrossAttentionBlock(width, num_heads, mlp_dim, rngs=rngs) for _ in range(depth)]
        )
        self.norm = nnx.LayerNorm(width, epsilon=_LN_EPS, rngs=rngs)
        self.head = nnx.Linear(
            width, output_dim, kernel_init=_dense_init, bias_init=_zeros, rngs=rngs
        )

    def embed_actions(self, action_tokens: jax.Array) -> jax.Array:
        """`int[N, Q, T] -> f32[N, Q, W]`: base query + sum over t of `token_embed[t, id_t]`."""
        n, q, t = action_tokens.shape
        queries = jnp.broadcast_to(self.base_query[...], (n, q, self.width))
        if self.token_embed is None:
            return queries
        positions = jnp.arange(t)
        # mode="fill" with NaN: an id outside [0, vocab_size) poisons the loss instead of being
        # clamped to a valid bin (jnp's default for out-of-bounds gathers).
        per_token = (
            self.token_embed[...].at[positions, action_tokens].get(mode="fill", fill_value=jnp.nan)
        )
        return queries + per_token.sum(axis=2)

    def __call__(self, patch_tokens: jax.Array, action_tokens: jax.Array) -> jax.Array:
        """`patch_tokens f32[N, P, input_dim]`, `action_tokens int[N, Q, T]` -> `f32[N, Q, out]`."""
        if action_tokens.ndim != 3 or action_tokens.shape[-1] != self.tokens_per_action:
            raise ValueError(
                f"action_tokens must have shape [N, Q, {self.tokens_per_action}], "
                f"got {tuple(action_tokens.shape)}"
            )
        if patch_tokens.ndim != 3 or patch_tokens.shape[0] != action_tokens.shape[0]:
            raise ValueError(
                f"patch_tokens must have shape [N, P, D] with the same N as action_tokens "
                f"{tuple(action_tokens.shape)}, got {tuple(patch_tokens.shape)}"
            )
        memory = self.memory_proj(patch_tokens)
        queries = self.embed_actions(action_tokens)
        for block in self.blocks:
            queries = block(queries, memory)
        return self.head(self.norm(queries))
