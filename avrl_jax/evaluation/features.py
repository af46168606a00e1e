"""Frozen-feature extraction: run the encoder once over a probe split and cache its outputs.

Which features are probed (the encoder alone, before any projection head of the pretraining
objective):
- `pooled f32[N, D]`: the ViT's pooled output, i.e. the CLS token after the final LayerNorm
  (`pool="cls"`), or the mean of the patch tokens after the final LayerNorm (`pool="gap"`).
  The linear, kNN and few-shot probes read it.
- `tokens [N, P, D]`: the patch tokens after the final LayerNorm (CLS excluded), kept only
  when asked for (the MAP probe reads them), as float32 or bfloat16 to halve their memory.

Images go through the encoder in fixed-size batches: the chunks a task yields (any size) are
re-cut into `[batch_size, s, s, 3]` batches and the last one is zero-padded, so the jitted
forward pass compiles once; the padded rows' outputs are dropped on the host (the ViT treats
examples independently, so padding cannot change the real rows). With several local
devices, each batch is split over them.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from avrl_jax.models.params import PlainParams, from_plain_params, to_plain_params

Encoder = nnx.Module | tuple[nnx.GraphDef, PlainParams]
TOKEN_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class Features:
    """Cached frozen features of N examples.

    Attributes:
      pooled: float32 [N, D].
      tokens: [N, P, D] (float32 or bfloat16), or None when not kept.
      labels: int32 [N], or None when the images came without labels.
    """

    pooled: np.ndarray
    tokens: np.ndarray | None = None
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.pooled.shape[0])


def split_encoder(encoder: Encoder) -> tuple[nnx.GraphDef, PlainParams]:
    """A module, or an already split (graphdef, plain params) pair -> (graphdef, params)."""
    if isinstance(encoder, nnx.Module):
        return to_plain_params(encoder)
    graphdef, params = encoder
    return graphdef, params


@functools.cache
def make_encode_fn(
    graphdef: nnx.GraphDef, keep_tokens: bool, token_dtype: str = "float32"
) -> Callable[[PlainParams, jax.Array], tuple[jax.Array, jax.Array | None]]:
    """The jitted forward pass `(params, images f32[B, s, s, 3]) -> (pooled f32[B, D],
    tokens [B, P, D] in token_dtype, or None)`.

    Cached per architecture (graphdefs are hashable), so the train and test splits, and the
    pretrained and random-init encoders of one architecture, share one compilation.
    """
    if token_dtype not in TOKEN_DTYPES:
        raise ValueError(f"token_dtype={token_dtype!r} is not valid; valid: {list(TOKEN_DTYPES)}")
    dtype = TOKEN_DTYPES[token_dtype]

    @jax.jit
    def encode(params: PlainParams, images: jax.Array):
        tokens, pooled = from_plain_params(graphdef, params)(images)
        return pooled.astype(jnp.float32), (tokens.astype(dtype) if keep_tokens else None)

    return encode


def rebatch(chunks: Iterable[np.ndarray], batch_size: int) -> Iterator[tuple[np.ndarray, int]]:
    """Re-cuts arrays of any leading size into `[batch_size, ...]` batches.

    Yields `(batch, num_valid)`: every batch has exactly `batch_size` rows; only the last may
    have `num_valid < batch_size`, its tail zero-padded.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pending: list[np.ndarray] = []
    size = 0
    for chunk in chunks:
        chunk = np.asarray(chunk)
        while chunk.shape[0]:
            take = min(batch_size - size, chunk.shape[0])
            pending.append(chunk[:take])
            size += take
            chunk = chunk[take:]
            if size == batch_size:
                yield np.concatenate(pending), batch_size
                pending, size = [], 0
    if size:
        tail = np.concatenate(pending)
        pad = np.zeros((batch_size - size, *tail.shape[1:]), tail.dtype)
        yield np.concatenate([tail, pad]), size


def _batch_sharding(batch_size: int) -> NamedSharding | None:
    """Splits batches over this process's devices when there are several and they divide the
    batch; None (the default device) otherwise."""
    devices = jax.local_devices()
    if len(devices) == 1 or batch_size % len(devices):
        return None
    return NamedSharding(Mesh(np.asarray(devices), ("data",)), PartitionSpec("data"))


def extract_features(
    encoder: Encoder,
    images: np.ndarray | Iterable[np.ndarray],
    *,
    batch_size: int = 256,
    keep_tokens: bool = False,
    token_dtype: str = "float32",
) -> Features:
    """Frozen features of `images` (normalised f32[N, s, s, 3], or an iterable of such chunks).

    Args:
      encoder: a ViT module, or its (graphdef, plain params).
      images: an array, or an iterable of arrays of any leading size.
      batch_size: examples per forward pass (fixed: the last batch is padded).
      keep_tokens: also return the patch tokens (the MAP probe needs them).
      token_dtype: "float32" or "bfloat16", the dtype the tokens are kept in.

    Returns:
      Features with `pooled` (and `tokens` if kept); `labels` None.
    """
    graphdef, params = split_encoder(encoder)
    encode = make_encode_fn(graphdef, keep_tokens, token_dtype)
    sharding = _batch_sharding(batch_size)
    replicated = None if sharding is None else NamedSharding(sharding.mesh, PartitionSpec())
    params = jax.device_put(params, replicated)
    if isinstance(images, np.ndarray | jax.Array):
        images = [np.asarray(images)]

    pooled, tokens = [], []

    def collect(outputs, num_valid: int) -> None:
        # Copying to the host here, one batch behind the dispatch, lets the device run the next
        # batch while the host prepares the one after.
        p, t = outputs
        pooled.append(np.asarray(p)[:num_valid])
        if keep_tokens:
            tokens.append(np.asarray(t)[:num_valid])

    in_flight = None
    for batch, num_valid in rebatch(images, batch_size):
        batch = jax.device_put(batch.astype(np.float32, copy=False), sharding)
        outputs = encode(params, batch)
        if in_flight is not None:
            collect(*in_flight)
        in_flight = (outputs, num_valid)
    if in_flight is not None:
        collect(*in_flight)
    if not pooled:
        raise ValueError("extract_features: no images were given")
    return Features(
        pooled=np.concatenate(pooled),
        tokens=np.concatenate(tokens) if keep_tokens else None,
    )


def extract_labelled(
    encoder: Encoder,
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    **kwargs,
) -> Features:
    """`extract_features` over `(images, labels)` chunks (a ProbeSplit's); keeps the labels.

    kwargs: as `extract_features` (batch_size, keep_tokens, token_dtype).
    """
    labels: list[np.ndarray] = []

    def images() -> Iterator[np.ndarray]:
        for chunk_images, chunk_labels in chunks:
            labels.append(np.asarray(chunk_labels, np.int32))
            yield chunk_images

    features = extract_features(encoder, images(), **kwargs)
    return dataclasses.replace(features, labels=np.concatenate(labels))
