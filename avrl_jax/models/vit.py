"""Vision Transformer encoder (big_vision-style), written with `flax.nnx`.

The encoder maps views `f32[N, h, w, 3]` (already normalised by the caller; the ViT does not
rescale pixels) to patch tokens `f32[N, P, D]` and one pooled feature `f32[N, D]`.

Choices, following big_vision's `vit.py` so published recipes transfer:
- Patch embedding: patchify by reshape, then one `Linear(p*p*3 -> D)`. This is the same map as
  a stride-p conv; the kernel's input axis is ordered (row, col, channel) inside a patch, so a
  conv kernel `[p, p, 3, D]` reshapes to ours `[p*p*3, D]`. Initialised lecun-normal (the flax
  conv default big_vision uses).
- `stem="conv"` replaces the patch embedding by a convolutional stem (Xiao et al. 2021, "Early
  Convolutions Help Transformers See Better"): log2(p) 3x3 stride-2 convolutions, each
  followed by LayerNorm and GELU, channels doubling up to D, then a 1x1 convolution to D; the
  same token grid. Far more data-efficient at small scale (see configs/study.py); it has no
  timm/big_vision equivalent, so such an encoder exports as npz only.
- Position embeddings: learned, normal(0.02), added to patch tokens only (the CLS token gets
  none), as in big_vision. `posemb="sincos2d"` gives fixed 2D sin-cos embeddings instead
  (MoCo-v3/MAE style; no parameters).
- Pre-LN blocks (LN, MHA, residual; LN, MLP with GELU, residual), final LN. Dense kernels
  xavier-uniform, biases zero, CLS token zero. LayerNorm epsilon 1e-6.
- Pooled output: the CLS token after the final LN (`pool="cls"`), or the mean of the patch
  tokens after the final LN (`pool="gap"`, no CLS token is created).
- Memory for large batches: `dtype="bfloat16"` computes in bfloat16 (parameters, the final LN
  and the outputs stay float32); `remat=True` recomputes each block's activations in the
  backward pass instead of keeping them (`nnx.remat` per block): the same values for about a
  fifth more FLOPs in the encoder (on XLA:CPU the peak memory was measured unchanged by it).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

# Sizes from "Scaling Vision Transformers" / big_vision; "mu" is a toy size for tests.
VIT_SIZES: dict[str, dict] = {
    "mu": {"width": 64, "depth": 2, "num_heads": 2, "mlp_dim": 256},
    "Ti": {"width": 192, "depth": 12, "num_heads": 3, "mlp_dim": 768},
    "S": {"width": 384, "depth": 12, "num_heads": 6, "mlp_dim": 1536},
    "M": {"width": 512, "depth": 12, "num_heads": 8, "mlp_dim": 2048},
    "B": {"width": 768, "depth": 12, "num_heads": 12, "mlp_dim": 3072},
    "L": {"width": 1024, "depth": 24, "num_heads": 16, "mlp_dim": 4096},
}

POOLS = ("cls", "gap")
STEMS = ("patch", "conv")
POSEMBS = ("learn", "sincos2d")
DTYPES = ("float32", "bfloat16")

_dense_init = nnx.initializers.xavier_uniform()
_zeros = nnx.initializers.zeros_init()
_posemb_init = nnx.initializers.normal(stddev=0.02)
_LN_EPS = 1e-6


def vit_config(variant: str, **overrides) -> dict:
    """The size of ViT `variant` (width, depth, num_heads, mlp_dim), with `overrides` applied.

    Raises ValueError naming `model.variant` and the valid choices for an unknown variant, and
    naming the valid fields for an unknown override.
    """
    if variant not in VIT_SIZES:
        raise ValueError(
            f"model.variant={variant!r} is not a known ViT size; "
            f"valid choices: {', '.join(VIT_SIZES)}"
        )
    config = dict(VIT_SIZES[variant])
    unknown = sorted(set(overrides) - set(config))
    if unknown:
        raise ValueError(
            f"unknown ViT size field(s) {unknown} for model.variant={variant!r}; "
            f"valid fields: {', '.join(config)}"
        )
    config.update(overrides)
    return config


def posemb_sincos_2d(grid_h: int, grid_w: int, width: int, temperature: float = 10_000.0):
    """Fixed 2D sin-cos position embeddings, `f32[grid_h * grid_w, width]` (big_vision layout)."""
    if width % 4 != 0:
        raise ValueError(f"sincos2d position embeddings need width % 4 == 0, got width={width}")
    y, x = np.mgrid[:grid_h, :grid_w]
    omega = np.arange(width // 4) / (width // 4 - 1 if width > 4 else 1)
    omega = 1.0 / (temperature**omega)
    y = np.einsum("m,d->md", y.flatten(), omega)
    x = np.einsum("m,d->md", x.flatten(), omega)
    table = np.concatenate([np.sin(x), np.cos(x), np.sin(y), np.cos(y)], axis=1)
    return jnp.asarray(table, dtype=jnp.float32)


def patchify(images: jax.Array, patch_size: int) -> jax.Array:
    """`[N, H, W, C] -> [N, (H/p)*(W/p), p*p*C]`; patches row-major, (row, col, C) inside each."""
    n, h, w, c = images.shape
    p = patch_size
    x = images.reshape(n, h // p, p, w // p, p, c)
    x = x.transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, (h // p) * (w // p), p * p * c)


class MlpBlock(nnx.Module):
    """`Linear(D -> mlp_dim) -> GELU -> Linear(mlp_dim -> D)`; shared by the encoder and decoder."""

    def __init__(self, width: int, mlp_dim: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
        kw = dict(kernel_init=_dense_init, bias_init=_zeros, dtype=dtype, rngs=rngs)
        self.fc1 = nnx.Linear(width, mlp_dim, **kw)
        self.fc2 = nnx.Linear(mlp_dim, width, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """`[..., D] -> [..., D]`."""
        return self.fc2(jax.nn.gelu(self.fc1(x)))


def attention(
    width: int, num_heads: int, *, rngs: nnx.Rngs, dtype=jnp.float32
) -> nnx.MultiHeadAttention:
    """A multi-head attention layer with big_vision's initialisation, no dropout.

    `decode=False` must be given: nnx.MultiHeadAttention raises at call time if `decode` is
    left None in both the constructor and the call.
    """
    return nnx.MultiHeadAttention(
        num_heads=num_heads,
        in_features=width,
        qkv_features=width,
        out_features=width,
        kernel_init=_dense_init,
        bias_init=_zeros,
        dtype=dtype,
        decode=False,
        deterministic=True,
        rngs=rngs,
    )


def self_attention(attn: nnx.MultiHeadAttention, x: jax.Array) -> jax.Array:
    """`attn(x)` (unmasked self-attention, no dropout) with the heads as a leading batch axis.

    The same parameters and values as nnx's layer, a different layout: queries, keys and values
    are `[N, H, L, d]`, so every attention dot and its backward has its batch axes (N, H)
    first, and XLA:CPU runs them as plain batched matmuls; nnx's `[N, L, H, d]` layout makes
    the backward emit `[N, H, d, L]` dots and transposes that run far below the matmul peak
    at 224 px (README "Benchmark").
    """
    dtype = attn.dtype or x.dtype
    x = x.astype(dtype)

    def heads(layer: nnx.LinearGeneral) -> jax.Array:  # [N, L, D] -> [N, H, L, d]
        bias = layer.bias[...].astype(dtype)[None, :, None, :]
        return jnp.einsum("nld,dhe->nhle", x, layer.kernel[...].astype(dtype)) + bias

    q, k, v = heads(attn.query), heads(attn.key), heads(attn.value)
    q = q / jnp.sqrt(q.shape[-1]).astype(dtype)
    weights = jax.nn.softmax(jnp.einsum("nhqe,nhke->nhqk", q, k), axis=-1).astype(dtype)
    out = jnp.einsum("nhqk,nhke->nhqe", weights, v)
    kernel = attn.out.kernel[...].astype(dtype)
    return jnp.einsum("nhqe,hed->nqd", out, kernel) + attn.out.bias[...].astype(dtype)


class EncoderBlock(nnx.Module):
    """Pre-LN Transformer block: `x + MHA(LN(x))`, then `x + MLP(LN(x))`."""

    def __init__(
        self, width: int, num_heads: int, mlp_dim: int, *, rngs: nnx.Rngs, dtype=jnp.float32
    ):
        self.norm1 = nnx.LayerNorm(width, epsilon=_LN_EPS, dtype=dtype, rngs=rngs)
        self.attn = attention(width, num_heads, rngs=rngs, dtype=dtype)
        self.norm2 = nnx.LayerNorm(width, epsilon=_LN_EPS, dtype=dtype, rngs=rngs)
        self.mlp = MlpBlock(width, mlp_dim, rngs=rngs, dtype=dtype)

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """`[N, L, D] -> [N, L, D]`; mask: bool `[N, 1, L, L]`, True where attention may look."""
        h = self.norm1(x)
        x = x + (self_attention(self.attn, h) if mask is None else self.attn(h, mask=mask))
        return x + self.mlp(self.norm2(x))


class ConvStem(nnx.Module):
    """`images f32[N, H, W, 3] -> tokens [N, (H/p)(W/p), D]` by log2(p) 3x3 stride-2 convs
    (LN + GELU after each; channels D/2^(k-1), ..., D/2, D) and a 1x1 conv (see the module)."""

    def __init__(self, patch_size: int, width: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
        k = int(round(np.log2(patch_size)))
        if patch_size < 2 or 2**k != patch_size or width % 2 ** (k - 1):
            raise ValueError(
                f"model.encoder.stem='conv' needs a power-of-two patch_size >= 2 whose stages "
                f"divide the width; got patch_size={patch_size}, width={width} (use "
                "stem='patch' for this size)"
            )
        channels = [3] + [width // 2 ** (k - 1 - i) for i in range(k)]
        conv = dict(kernel_init=nnx.initializers.lecun_normal(), dtype=dtype, rngs=rngs)
        self.convs = nnx.List(
            [nnx.Conv(channels[i], channels[i + 1], (3, 3), strides=2, **conv) for i in range(k)]
        )
        self.norms = nnx.List(
            [nnx.LayerNorm(c, epsilon=_LN_EPS, dtype=dtype, rngs=rngs) for c in channels[1:]]
        )
        self.proj = nnx.Conv(width, width, (1, 1), bias_init=_zeros, **conv)

    def __call__(self, images: jax.Array) -> jax.Array:
        x = images
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = jax.nn.gelu(norm(conv(x)))
        x = self.proj(x)
        return x.reshape(x.shape[0], -1, x.shape[-1])


class ViT(nnx.Module):
    """ViT encoder: `images f32[N, h, w, 3] -> (patch_tokens f32[N, P, D], pooled f32[N, D])`.

    `P = (image_size / patch_size) ** 2`, `D` = the variant's width. `depth` overrides the
    variant's depth. `dtype` is the compute dtype (parameters stay float32); outputs are float32.
    """

    def __init__(
        self,
        *,
        variant: str,
        patch_size: int,
        image_size: int,
        rngs: nnx.Rngs,
        depth: int | None = None,
        dtype="float32",
        pool: str = "cls",
        posemb: str = "learn",
        remat: bool = False,
        stem: str = "patch",
    ):
        size = vit_config(variant) if depth is None else vit_config(variant, depth=depth)
        if image_size % patch_size != 0:
            raise ValueError(
                f"image_size={image_size} is not divisible by patch_size={patch_size}; "
                "choose a resolution that is a multiple of the patch size"
            )
        if pool not in POOLS:
            raise ValueError(f"model.pool={pool!r} is not valid; valid choices: {POOLS}")
        if stem not in STEMS:
            raise ValueError(f"model.encoder.stem={stem!r} is not valid; valid choices: {STEMS}")
        if posemb not in POSEMBS:
            raise ValueError(f"model.posemb={posemb!r} is not valid; valid choices: {POSEMBS}")
        name = dtype if isinstance(dtype, str) else jnp.dtype(dtype).name
        if name not in DTYPES:
            raise ValueError(f"model.encoder.dtype={name!r} is not valid; valid choices: {DTYPES}")
        dtype = jnp.dtype(name)
        self.variant = variant
        self.width: int = size["width"]
        self.depth: int = size["depth"]
        self.num_heads: int = size["num_heads"]
        self.patch_size = patch_size
        self.image_size = image_size
        self.grid = image_size // patch_size
        self.num_patches = self.grid**2
        self.pool = pool
        self.posemb = posemb
        self.dtype = dtype
        self.remat = remat
        self.stem = stem

        if stem == "patch":
            self.patch_embed = nnx.Linear(
                patch_size * patch_size * 3,
                self.width,
                kernel_init=nnx.initializers.lecun_normal(),
                bias_init=_zeros,
                dtype=dtype,
                rngs=rngs,
            )
        else:
            self.conv_stem = ConvStem(patch_size, self.width, rngs=rngs, dtype=dtype)
        self.pos_embed = (
            nnx.Param(_posemb_init(rngs.params(), (1, self.num_patches, self.width)))
            if posemb == "learn"
            else None
        )
        self.cls_token = (
            nnx.Param(jnp.zeros((1, 1, self.width), jnp.float32)) if pool == "cls" else None
        )
        self.blocks = nnx.List(
            [
                EncoderBlock(self.width, self.num_heads, size["mlp_dim"], rngs=rngs, dtype=dtype)
                for _ in range(self.depth)
            ]
        )
        # The final LN runs in float32 so the features handed to heads and probes are f32.
        self.norm = nnx.LayerNorm(self.width, epsilon=_LN_EPS, dtype=jnp.float32, rngs=rngs)

    def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
        """`images f32[N, s, s, 3]` -> `(patch_tokens f32[N, P, D], pooled f32[N, D])`.

        `s` is `image_size` or any other multiple of the patch size (DINO's local crops): the
        learned position embeddings are then resized to the new grid (bicubic, as DINO does).
        """
        size = images.shape[1] if images.ndim == 4 else None
        if (
            size is None
            or images.shape[2] != size
            or images.shape[3] != 3
            or size % self.patch_size
        ):
            raise ValueError(
                f"ViT expects images of shape [N, {self.image_size}, {self.image_size}, 3] "
                f"(or another square side divisible by {self.patch_size}), "
                f"got {tuple(images.shape)}"
            )
        grid = size // self.patch_size
        if self.stem == "patch":
            x = self.patch_embed(patchify(images, self.patch_size))
        else:
            x = self.conv_stem(images)
        if self.pos_embed is not None:
            x = x + self.position_embedding(grid).astype(x.dtype)
        else:
            x = x + posemb_sincos_2d(grid, grid, self.width).astype(x.dtype)[None]
        if self.cls_token is not None:
            cls = jnp.broadcast_to(self.cls_token[...], (x.shape[0], 1, self.width))
            x = jnp.concatenate([cls.astype(x.dtype), x], axis=1)
        for block in self.blocks:
            x = _remat_block(block, x) if self.remat else block(x)
        x = self.norm(x.astype(jnp.float32))
        if self.cls_token is not None:
            return x[:, 1:], x[:, 0]
        return x, x.mean(axis=1)

    def position_embedding(self, grid: int) -> jax.Array:
        """The learned position embeddings for a `grid` x `grid` patch grid: f32[1, grid^2, D]."""
        table = self.pos_embed[...]
        if grid == self.grid:
            return table
        square = table.reshape(self.grid, self.grid, self.width)
        resized = jax.image.resize(square, (grid, grid, self.width), "cubic", antialias=False)
        return resized.reshape(1, grid * grid, self.width)


# A block whose activations are recomputed in the backward pass (ViT(remat=True)).
_remat_block = nnx.remat(lambda block, x: block(x))
