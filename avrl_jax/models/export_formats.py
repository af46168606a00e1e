"""Our ViT encoder's plain parameter tree -> other codebases' layouts (pure functions, no I/O).

`avrl_jax.export` (the CLI) writes what these return; everything here maps numpy arrays to
numpy arrays, so it can be checked without files.

- `timm`: `timm_state_dict` (timm's names and layouts) loads into
  `timm.models.vision_transformer.VisionTransformer(**timm_kwargs(spec))` with
  `load_state_dict(strict=True)`.
- `big_vision`: `big_vision_params` ("/"-joined names, as big_vision's npz checkpoints) loads
  into big_vision's `vit.Model(**big_vision_model_config(spec))` (nn.scan off).
- `npz`: `flatten` is our own tree, "/"-joined; `unflatten` gives it back.

What has to match for the features to agree, and how each format gets it:
- Patch embedding: ours is a Linear over patches flattened in (row, col, channel) order, so the
  kernel `[p*p*3, D]` reshapes to a conv kernel `[p, p, 3, D]` (HWIO, big_vision's
  `embedding/kernel`), and transposes to torch's `[D, 3, p, p]` (timm's `patch_embed.proj`).
- Attention: ours (flax `nnx.MultiHeadAttention`) keeps query/key/value kernels `[D, H, D/H]`,
  biases `[H, D/H]`, the output kernel `[H, D/H, D]`: big_vision's layout exactly. timm fuses
  q, k, v into one Linear whose `3D` outputs are ordered (q|k|v, head, channel) (it reshapes
  them to `[B, N, 3, H, D/H]`), torch Linear weights being `[out, in]`.
- Position embeddings: added to the patch tokens only, the CLS token gets none: timm's
  `no_embed_class=True`, big_vision's layout. Fixed sin-cos embeddings (`posemb="sincos2d"`)
  are a table in timm (written as `pos_embed`) and computed, not stored, in big_vision.
- GELU: `jax.nn.gelu`'s default, the tanh approximation (as flax's `nn.gelu` in big_vision).
  timm's default is the exact (erf) GELU, so the timm kwargs set `act_layer="gelu_tanh"`.
- LayerNorm epsilon 1e-6: timm's ViT default and flax linen's default.
- Pooling: `pool="cls"` is timm's `global_pool="token"` and big_vision's `pool_type="tok"`;
  `pool="gap"` (mean of the patch tokens after the final LayerNorm) is big_vision's `"gap"`
  and timm's `global_pool="avg"` with `fc_norm=False` (timm's default for "avg" would move the
  final LayerNorm after the pooling instead).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

FORMATS = ("timm", "big_vision", "npz")
LAYER_NORM_EPS = 1e-6  # avrl_jax.models.vit._LN_EPS
TIMM_ACT_LAYER = "gelu_tanh"
SEPARATOR = "/"


class ExportError(ValueError):
    """The parameter tree cannot be expressed in the asked format."""


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    """The architecture of a ViT encoder parameter tree, read from its arrays' shapes."""

    width: int
    depth: int
    num_heads: int
    mlp_dim: int
    patch_size: int
    image_size: int
    pool: str  # "cls" | "gap"
    posemb: str  # "learn" | "sincos2d"
    stem: str = "patch"  # "patch" | "conv" (npz only: timm and big_vision ViTs have no conv stem)

    def check_patch_stem(self, fmt: str) -> None:
        if self.stem != "patch":
            raise ExportError(
                f"this encoder has a convolutional stem (model.encoder.stem={self.stem!r}), "
                f"which {fmt}'s ViT does not have; export it with --format npz"
            )

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid**2


def _np(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def encoder_spec(params: dict, image_size: int) -> EncoderSpec:
    """Reads the architecture off `params` (a `ViT`'s plain tree); `image_size` is the input
    side the encoder was trained at (the training config's `env.view_size`)."""
    try:
        blocks = params["blocks"]
        if "conv_stem" in params:  # stem="conv": p = 2^(stride-2 convs), D = the 1x1 conv's
            stem = "conv"
            patch_size = 2 ** len(params["conv_stem"]["convs"])
            width = params["conv_stem"]["proj"]["kernel"].shape[-1]
        else:
            stem = "patch"
            kernel = params["patch_embed"]["kernel"]
            width = kernel.shape[1]
            patch_size = int(round((kernel.shape[0] // 3) ** 0.5))
            if patch_size * patch_size * 3 != kernel.shape[0]:
                raise ExportError(f"patch_embed kernel {kernel.shape} is not [p*p*3, D]")
        query = blocks["0"]["attn"]["query"]["kernel"]
        fc1 = blocks["0"]["mlp"]["fc1"]["kernel"]
    except (KeyError, TypeError) as error:
        raise ExportError(
            f"not a ViT encoder parameter tree (no {error}); pass the tree of "
            "avrl_jax.models.vit.ViT (the checkpoint's params/encoder)"
        ) from None
    if image_size % patch_size:
        raise ExportError(f"image_size={image_size} is not a multiple of the patch {patch_size}")
    spec = EncoderSpec(
        width=int(width),
        depth=len(blocks),
        num_heads=int(query.shape[1]),
        mlp_dim=int(fc1.shape[1]),
        patch_size=patch_size,
        image_size=int(image_size),
        pool="cls" if params.get("cls_token") is not None else "gap",
        posemb="learn" if params.get("pos_embed") is not None else "sincos2d",
        stem=stem,
    )
    if spec.posemb == "learn" and params["pos_embed"].shape[1] != spec.num_patches:
        raise ExportError(
            f"pos_embed has {params['pos_embed'].shape[1]} positions, but image_size="
            f"{image_size} with patch {patch_size} gives {spec.num_patches}"
        )
    return spec


def _blocks(params: dict, spec: EncoderSpec) -> list[dict]:
    return [params["blocks"][str(i)] for i in range(spec.depth)]


def position_table(params: dict, spec: EncoderSpec) -> np.ndarray:
    """The position embeddings of the patch tokens, f32[1, N, D] (learned, or the sin-cos
    table the encoder computes)."""
    if spec.posemb == "learn":
        return _np(params["pos_embed"])
    from avrl_jax.models.vit import posemb_sincos_2d  # the encoder's own table

    return _np(posemb_sincos_2d(spec.grid, spec.grid, spec.width))[None]


# --------------------------------------------------------------------------------------------
# timm.


def timm_state_dict(params: dict, spec: EncoderSpec) -> dict[str, np.ndarray]:
    """timm `VisionTransformer` state_dict entries (numpy, C-contiguous) for `params`."""
    spec.check_patch_stem("timm")
    d, p = spec.width, spec.patch_size
    kernel = _np(params["patch_embed"]["kernel"]).reshape(p, p, 3, d)
    out: dict[str, np.ndarray] = {}
    if spec.pool == "cls":
        out["cls_token"] = _np(params["cls_token"])
    out["pos_embed"] = position_table(params, spec)
    out["patch_embed.proj.weight"] = kernel.transpose(3, 2, 0, 1)  # [D, 3, p, p]
    out["patch_embed.proj.bias"] = _np(params["patch_embed"]["bias"])
    for i, block in enumerate(_blocks(params, spec)):
        attn, mlp, name = block["attn"], block["mlp"], f"blocks.{i}"
        out[f"{name}.norm1.weight"] = _np(block["norm1"]["scale"])
        out[f"{name}.norm1.bias"] = _np(block["norm1"]["bias"])
        # [D, H, D/H] -> [D, D] (outputs ordered head, channel) -> torch's [out, in].
        out[f"{name}.attn.qkv.weight"] = np.concatenate(
            [_np(attn[k]["kernel"]).reshape(d, d).T for k in ("query", "key", "value")]
        )
        out[f"{name}.attn.qkv.bias"] = np.concatenate(
            [_np(attn[k]["bias"]).reshape(d) for k in ("query", "key", "value")]
        )
        # [H, D/H, D] -> [D (inputs ordered head, channel), D] -> [out, in].
        out[f"{name}.attn.proj.weight"] = _np(attn["out"]["kernel"]).reshape(d, d).T
        out[f"{name}.attn.proj.bias"] = _np(attn["out"]["bias"])
        out[f"{name}.norm2.weight"] = _np(block["norm2"]["scale"])
        out[f"{name}.norm2.bias"] = _np(block["norm2"]["bias"])
        for fc in ("fc1", "fc2"):
            out[f"{name}.mlp.{fc}.weight"] = _np(mlp[fc]["kernel"]).T
            out[f"{name}.mlp.{fc}.bias"] = _np(mlp[fc]["bias"])
    out["norm.weight"] = _np(params["norm"]["scale"])
    out["norm.bias"] = _np(params["norm"]["bias"])
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def timm_kwargs(spec: EncoderSpec) -> dict[str, Any]:
    """`VisionTransformer(**kwargs)` building the architecture `timm_state_dict` fills, with
    no classifier (`num_classes=0`: the model returns the pooled features). LayerNorm eps is
    timm's default for ViTs, 1e-6, as ours (not a constructor argument)."""
    if spec.mlp_dim % spec.width:
        raise ExportError(
            f"mlp_dim={spec.mlp_dim} is not a multiple of width={spec.width}: timm's "
            "mlp_ratio could not rebuild it"
        )
    return {
        "img_size": spec.image_size,
        "patch_size": spec.patch_size,
        "in_chans": 3,
        "embed_dim": spec.width,
        "depth": spec.depth,
        "num_heads": spec.num_heads,
        "mlp_ratio": spec.mlp_dim / spec.width,
        "qkv_bias": True,
        "class_token": spec.pool == "cls",
        "no_embed_class": True,
        "pos_embed": "learn",
        "global_pool": "token" if spec.pool == "cls" else "avg",
        "fc_norm": False,
        "num_classes": 0,
        "act_layer": TIMM_ACT_LAYER,
    }


# --------------------------------------------------------------------------------------------
# big_vision.


def big_vision_params(params: dict, spec: EncoderSpec) -> dict[str, np.ndarray]:
    """big_vision `vit.Model` parameters (nn.scan off), flattened with "/" as its npz
    checkpoints are. No `head` (no classifier); no `pos_embedding` for sincos2d (computed)."""
    spec.check_patch_stem("big_vision")
    d, p = spec.width, spec.patch_size
    out: dict[str, np.ndarray] = {
        "embedding/kernel": _np(params["patch_embed"]["kernel"]).reshape(p, p, 3, d),
        "embedding/bias": _np(params["patch_embed"]["bias"]),
    }
    if spec.pool == "cls":
        out["cls"] = _np(params["cls_token"])
    if spec.posemb == "learn":
        out["pos_embedding"] = _np(params["pos_embed"])
    for i, block in enumerate(_blocks(params, spec)):
        name = f"Transformer/encoderblock_{i}"
        for ours, theirs in (("norm1", "LayerNorm_0"), ("norm2", "LayerNorm_1")):
            out[f"{name}/{theirs}/scale"] = _np(block[ours]["scale"])
            out[f"{name}/{theirs}/bias"] = _np(block[ours]["bias"])
        for key in ("query", "key", "value", "out"):
            for leaf in ("kernel", "bias"):
                out[f"{name}/MultiHeadDotProductAttention_0/{key}/{leaf}"] = _np(
                    block["attn"][key][leaf]
                )
        for ours, theirs in (("fc1", "Dense_0"), ("fc2", "Dense_1")):
            for leaf in ("kernel", "bias"):
                out[f"{name}/MlpBlock_0/{theirs}/{leaf}"] = _np(block["mlp"][ours][leaf])
    out["Transformer/encoder_norm/scale"] = _np(params["norm"]["scale"])
    out["Transformer/encoder_norm/bias"] = _np(params["norm"]["bias"])
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def big_vision_model_config(spec: EncoderSpec) -> dict[str, Any]:
    """big_vision `vit.Model(num_classes=None, **config)` kwargs for the exported parameters."""
    return {
        "patch_size": [spec.patch_size, spec.patch_size],
        "width": spec.width,
        "depth": spec.depth,
        "mlp_dim": spec.mlp_dim,
        "num_heads": spec.num_heads,
        "posemb": spec.posemb,
        "pool_type": "tok" if spec.pool == "cls" else "gap",
        "scan": False,
    }


# --------------------------------------------------------------------------------------------
# Our own tree.


def flatten(params: dict, prefix: str = "") -> dict[str, np.ndarray]:
    """Our nested tree -> {"blocks/0/attn/query/kernel": array, ...} (None leaves dropped)."""
    flat: dict[str, np.ndarray] = {}
    for key, value in params.items():
        key = str(key)
        if SEPARATOR in key:
            raise ExportError(f"parameter name {key!r} contains {SEPARATOR!r}")
        path = f"{prefix}{SEPARATOR}{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(flatten(value, path))
        elif value is not None:
            flat[path] = np.asarray(value)
    return flat


def unflatten(flat: dict[str, np.ndarray]) -> dict:
    """The inverse of `flatten`."""
    tree: dict = {}
    for path, value in flat.items():
        *parents, leaf = path.split(SEPARATOR)
        node = tree
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return tree


# --------------------------------------------------------------------------------------------
# What every format records beside the arrays.


def input_spec(image_size: int, mean: float, std: float, layout: str) -> dict[str, Any]:
    """How images must be prepared for the exported encoder, as training prepared them."""
    return {
        "resolution": [image_size, image_size],
        "layout": layout,
        "channels": "RGB",
        "value_range": [0.0, 1.0],
        "mean": [float(mean)] * 3,
        "std": [float(std)] * 3,
        "normalize": "x = (pixels / 255 - mean) / std, per channel",
        "resize": (
            "the whole image resized to the resolution, bilinear, antialiased when "
            "downscaling (avrl_jax.env.render.render of the full box)"
        ),
    }


def architecture(spec: EncoderSpec) -> dict[str, Any]:
    """Our description of the encoder (sizes, pooling, position embeddings, activations)."""
    return {
        **dataclasses.asdict(spec),
        "layer_norm_eps": LAYER_NORM_EPS,
        "activation": "gelu_tanh (jax.nn.gelu, approximate=True)",
        "pooled": (
            "CLS token after the final LayerNorm"
            if spec.pool == "cls"
            else "mean of the patch tokens after the final LayerNorm"
        ),
    }
