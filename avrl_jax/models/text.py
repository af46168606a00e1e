"""A small Transformer text encoder over UTF-8 bytes (CLIP's annotations are captions).

The tokenizer is the identity on bytes: captions arrive as zero-padded `uint8[L]` arrays
(`caption_bytes`), byte b becomes token b and 0 is padding. No vocabulary file is needed, so
nothing is downloaded and every caption, in any language, has a tokenisation.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from avrl_jax.models.vit import EncoderBlock

BYTE_VOCAB = 256


def byte_tokens(caption_bytes: jax.Array, max_len: int) -> jax.Array:
    """uint8 [N, L] -> int32 [N, max_len] (truncated; 0 = padding)."""
    return caption_bytes[:, :max_len].astype(jnp.int32)


class TextEncoder(nnx.Module):
    """Bytes -> Transformer (padding-masked) -> LN -> mean over real tokens: `[N, width]`."""

    def __init__(
        self,
        *,
        width: int,
        depth: int,
        num_heads: int,
        mlp_dim: int,
        max_len: int,
        rngs: nnx.Rngs,
    ):
        self.max_len = max_len
        self.width = width
        self.embed = nnx.Embed(BYTE_VOCAB, width, rngs=rngs)
        self.pos_embed = nnx.Param(
            0.02 * jax.random.normal(rngs.params(), (1, max_len, width), jnp.float32)
        )
        self.blocks = nnx.List(
            [EncoderBlock(width, num_heads, mlp_dim, rngs=rngs) for _ in range(depth)]
        )
        self.norm = nnx.LayerNorm(width, epsilon=1e-6, rngs=rngs)

    def __call__(self, caption_bytes: jax.Array) -> jax.Array:
        """uint8 [N, L] -> f32 [N, width]."""
        tokens = byte_tokens(caption_bytes, self.max_len)
        valid = tokens > 0
        # An empty caption still attends to its first position, so no row is all-masked.
        valid = valid.at[:, 0].set(True)
        x = self.embed(tokens) + self.pos_embed[...][:, : tokens.shape[1]]
        mask = valid[:, None, None, :] & valid[:, None, :, None]
        mask = mask | jnp.eye(tokens.shape[1], dtype=bool)[None, None]
        for block in self.blocks:
            x = block(x, mask=mask)
        x = self.norm(x)
        weights = valid.astype(x.dtype)[..., None]
        return jnp.sum(x * weights, axis=1) / jnp.sum(weights, axis=1)
