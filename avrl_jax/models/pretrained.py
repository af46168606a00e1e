"""A pretrained encoder from a run's workdir, ready to embed images.

    import avrl_jax
    encoder = avrl_jax.load_encoder("workdir/default")            # latest step, online params
    pooled = encoder.embed(images)                                 # uint8[N, H, W, 3] -> f32[N, D]
    pooled, tokens = encoder.embed(images, tokens=True)            # tokens f32[N, P, D]

Images of any size are resized to the encoder's input size (the run's `env.view_size`) as the
probes do, `render` of the full box (bilinear, antialiased when downscaling; a non-square image
is stretched to the square), then normalised as in training (`normalize`), and go through the
encoder in fixed-size batches under `jax.jit` (the last batch zero-padded, so each input shape
compiles once).

The parameters are read with `checkpointing.restore_params`, which reads every array whole onto
this process's first device, however it was sharded when saved (FSDP included): load in one
process (no `jax.distributed`), on any number of devices.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from avrl_jax import paths
from avrl_jax.checkpointing import PARAMS_CHOICES, restore_params
from avrl_jax.env.render import normalize, render
from avrl_jax.evaluation.features import rebatch
from avrl_jax.models.build import build_encoder, load_train_config
from avrl_jax.models.params import PlainParams, from_plain_params

FULL_BOX = np.array([0.0, 0.0, 1.0, 1.0], np.float32)


def restore_encoder(
    workdir: str, step: int | None = None, params: str = "online"
) -> tuple[ml_collections.ConfigDict, int, nnx.GraphDef, PlainParams]:
    """(train config, step, encoder graphdef, encoder params) of a run's checkpoint.

    Raises:
      ValueError: `params` is not "online" or "ema".
      FileNotFoundError: the workdir, its config.json or the checkpoint (step) is missing; the
        message names what is missing.
    """

    if params not in PARAMS_CHOICES:
        raise ValueError(
            f"params={params!r} is not valid; valid choices: {', '.join(PARAMS_CHOICES)}"
        )
    if not paths.isdir(workdir):
        raise FileNotFoundError(f"workdir {workdir} does not exist")
    train_config = load_train_config(workdir)
    graphdef, _ = build_encoder(train_config)
    step, restored = restore_params(workdir, step, subtree=(PARAMS_CHOICES[params], "encoder"))
    # Fail here, naming the mismatch, rather than inside the first embed call.
    from_plain_params(graphdef, restored)
    return train_config, int(step), graphdef, restored


@functools.cache
def _embed_fn(graphdef: nnx.GraphDef, image_size: int):
    """jit((params, images uint8 or f32 [B, H, W, 3]) -> (pooled f32[B, D],
    tokens f32[B, P, D]))."""

    @jax.jit
    def embed(params: PlainParams, images: jax.Array):
        box = jnp.asarray(FULL_BOX)
        views = jax.vmap(lambda image: render(image, box, image_size))(images)
        tokens, pooled = from_plain_params(graphdef, params)(normalize(views))
        return pooled.astype(jnp.float32), tokens.astype(jnp.float32)

    return embed


@dataclasses.dataclass(frozen=True)
class PretrainedEncoder:
    """A run's encoder at one step. `embed` is the whole inference path (resize, normalise,
    encode); `graphdef`/`params` are the raw module for other uses
    (`avrl_jax.models.from_plain_params(graphdef, params)(normalised images)`)."""

    workdir: str
    step: int
    params_kind: str  # "online" | "ema"
    config: ml_collections.ConfigDict  # the pretraining run's config
    graphdef: nnx.GraphDef
    params: PlainParams

    @property
    def image_size(self) -> int:
        """The encoder's input side in pixels (images are resized to it)."""
        return int(self.config.env.view_size)

    @property
    def width(self) -> int:
        """D, the feature size."""
        return int(self.params["patch_embed"]["kernel"].shape[1])

    def embed(self, images, tokens: bool = False, batch_size: int = 256):
        """Features of `images`: uint8 [N, H, W, 3] (or float in [0, 1]), any H and W.

        Returns pooled f32[N, D] (numpy); with `tokens`, also the patch tokens f32[N, P, D]
        after the final LayerNorm (CLS excluded), as `(pooled, tokens)`.
        """
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] == 0:
            raise ValueError(
                f"embed expects images of shape [N, H, W, 3] with N >= 1, got {images.shape}"
            )
        if images.dtype != np.uint8:
            images = images.astype(np.float32)
        fn = _embed_fn(self.graphdef, self.image_size)
        pooled, patch_tokens = [], []
        for batch, num_valid in rebatch([images], min(batch_size, len(images))):
            p, t = fn(self.params, batch)
            pooled.append(np.asarray(p)[:num_valid])
            if tokens:
                patch_tokens.append(np.asarray(t)[:num_valid])
        pooled = np.concatenate(pooled)
        return (pooled, np.concatenate(patch_tokens)) if tokens else pooled


def load_encoder(
    workdir: str, step: int | None = None, params: str = "online"
) -> PretrainedEncoder:
    """The encoder of the run in `workdir` at `step` (default: the latest checkpoint).

    Args:
      workdir: a pretraining run's workdir (config.json and checkpoints/).
      step: the checkpoint step; None for the latest.
      params: "online" (the trained network) or "ema" (the EMA/target network).

    Raises ValueError for an unknown `params`, FileNotFoundError naming a missing workdir,
    config.json or checkpoint.
    """
    config, step, graphdef, encoder_params = restore_encoder(workdir, step, params)
    return PretrainedEncoder(
        workdir=paths.absolute(workdir),
        step=step,
        params_kind=params,
        config=config,
        graphdef=graphdef,
        params=jax.device_put(encoder_params),
    )
