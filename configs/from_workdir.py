r"""The config a workdir's run was written with: WORKDIR/config.json, as a config.

Run (resume a run with exactly its own config, e.g. as the checkpoint-mismatch error advises):
  .venv/bin/python -m avrl_jax.main --config configs/from_workdir.py:WORKDIR --workdir WORKDIR
Probes read config.json themselves; this is for the trainer (and `--config.<field>=` overrides
on top, e.g. `--config.total_steps=1000` to train on).
"""

import json
import os

import ml_collections


def _tuples(value):
    """JSON lists back to the tuples the config files use (ranges, sizes, rules)."""
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if not arg:
        raise ValueError(
            "configs/from_workdir.py needs the workdir: --config configs/from_workdir.py:WORKDIR"
        )
    path = os.path.join(arg, "config.json")
    if not os.path.exists(path):
        raise ValueError(
            f"{path} not found: configs/from_workdir.py:WORKDIR takes a training run's workdir"
        )
    with open(path) as f:
        return ml_collections.ConfigDict(_tuples(json.load(f)))
