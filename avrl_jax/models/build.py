"""The encoder of a pretraining run, rebuilt from its workdir's config.json."""

from __future__ import annotations

import json

import ml_collections
from flax import nnx

from avrl_jax import paths
from avrl_jax.models.params import PlainParams, to_plain_params
from avrl_jax.models.vit import ViT


def load_train_config(workdir: str) -> ml_collections.ConfigDict:
    """The pretraining run's resolved config, from WORKDIR/config.json."""
    path = paths.join(workdir, "config.json")
    if not paths.exists(path):
        raise FileNotFoundError(
            f"{path} not found: --workdir must be a pretraining run's workdir (it writes "
            "config.json at start)"
        )
    return ml_collections.ConfigDict(json.loads(paths.read_text(path)))


def build_encoder(
    train_config: ml_collections.ConfigDict, seed: int | None = None
) -> tuple[nnx.GraphDef, PlainParams]:
    """(graphdef, plain params) of the run's encoder, randomly initialised.

    With the default seed (the run's `config.seed`) this is the run's own step-0 encoder: the
    pretraining network builds its encoder first from `nnx.Rngs(config.seed)`.
    """
    seed = train_config.seed if seed is None else seed
    encoder = ViT(
        image_size=int(train_config.env.view_size),
        rngs=nnx.Rngs(seed),
        **dict(train_config.model.encoder),
    )
    return to_plain_params(encoder)
