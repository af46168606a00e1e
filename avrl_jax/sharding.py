"""The device mesh and the shardings of the batch and the train state.

Axes: `data` (pure data parallelism) and `fsdp` (data parallelism with sharded parameters).
The batch is split over both. Parameters, their EMA target and optimizer moments are
replicated, or split over `fsdp` by the rules in `state_shardings` (a config change, not a code
change).
The mesh uses Auto axis types, passed explicitly: the train step is written against global
shapes and lets XLA's sharding propagation place intermediates (views, tokens, logits).
"""

import math
import re

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

MESH_AXES = ("data", "fsdp")
BATCH_AXES = ("data", "fsdp")


def mesh_shape(mesh_config, device_count: int) -> tuple[int, ...]:
    """Sizes of (data, fsdp); one axis may be -1, meaning 'all remaining devices'."""
    sizes = [int(mesh_config[axis]) for axis in MESH_AXES]
    named = lambda: ", ".join(f"mesh.{a}={s}" for a, s in zip(MESH_AXES, sizes, strict=True))
    if sizes.count(-1) > 1:
        raise ValueError(f"at most one mesh axis may be -1, got {named()}")
    known = int(np.prod([s for s in sizes if s != -1]))
    if -1 in sizes:
        if device_count % known:
            raise ValueError(f"{named()} does not divide {device_count} devices")
        sizes[sizes.index(-1)] = device_count // known
    if int(np.prod(sizes)) != device_count:
        raise ValueError(
            f"{named()} needs {int(np.prod(sizes))} devices, but {device_count} are available"
        )
    return tuple(sizes)


def make_mesh(mesh_config, devices=None) -> Mesh:
    devices = jax.devices() if devices is None else devices
    shape = mesh_shape(mesh_config, len(devices))
    return jax.make_mesh(
        shape, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES), devices=devices
    )


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over data and fsdp; other axes whole."""
    return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_shards(mesh: Mesh) -> int:
    return int(np.prod([mesh.shape[axis] for axis in BATCH_AXES]))


def global_batch(local_batch, mesh: Mesh):
    """Assemble per-process numpy batches into global arrays sharded over the batch axes."""
    sharding = batch_sharding(mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), local_batch)


# --- Parameter sharding ---------------------------------------------------------------------
SHARDING_KINDS = ("replicate", "fsdp")


def path_name(path) -> str:
    """'params/encoder/blocks/0/attn/query/kernel' from a jax tree path."""
    parts = []
    for key in path:
        for attr in ("name", "key", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
    return "/".join(parts)


def leaf_spec(name: str, shape: tuple[int, ...], mesh: Mesh, rules, min_fsdp_size: int) -> P:
    """The partition spec of one state leaf.

    `rules`: (regex, kind) pairs, first `re.search` match on the leaf's path wins; kind is
    "replicate" or "fsdp". Without a match, leaves of at least `min_fsdp_size` elements are
    FSDP-sharded. FSDP splits the largest dimension divisible by the `fsdp` axis size (a leaf
    with none stays replicated). Moments of the optimizer and the EMA target carry the
    parameter's path as a suffix, so they follow the same rule as their parameter.
    """
    kind = None
    for pattern, rule_kind in rules:
        if re.search(pattern, name):
            kind = rule_kind
            break
    if kind is None:
        kind = "fsdp" if math.prod(shape) >= min_fsdp_size else "replicate"
    if kind not in SHARDING_KINDS:
        raise ValueError(f"mesh.rules: kind {kind!r} for {name!r} is not one of {SHARDING_KINDS}")
    fsdp = mesh.shape["fsdp"]
    if kind == "replicate" or fsdp == 1:
        return P()
    divisible = [d for d in range(len(shape)) if shape[d] % fsdp == 0]
    if not divisible:
        return P()
    dim = max(divisible, key=lambda d: shape[d])
    return P(*[("fsdp" if d == dim else None) for d in range(len(shape))])


def state_shardings(state, mesh: Mesh, rules=(), min_fsdp_size: int = 2**62):
    """NamedShardings for every leaf of the train state (replicated by default)."""
    return jax.tree_util.tree_map_with_path(
        lambda path, x: NamedSharding(
            mesh, leaf_spec(path_name(path), tuple(x.shape), mesh, rules, min_fsdp_size)
        ),
        state,
    )
