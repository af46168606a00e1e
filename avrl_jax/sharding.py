"""The device mesh and the shardings of the batch and the train state.

Axes: `data` (pure data parallelism) and `fsdp` (data parallelism whose parameters may later be
sharded too). The batch is split over both. Parameters are replicated for now.
The mesh uses Auto axis types, passed explicitly: the train step is written against global
shapes and lets XLA's sharding propagation place intermediates (views, tokens, logits).
"""

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
