r"""Pre-flight: compile the train step for a mesh of simulated devices, without running it.

Prints per-device memory and FLOPs, so a config can be checked before booking a pod:

  python -m avrl_jax.preflight --config configs/ab_vit_s16_cc12m.py:ab_clip --devices 64 \
      --config.mesh.data=16 --config.mesh.fsdp=4

With `--target KIND` (e.g. `v4`, `v5p`, `h100`: avrl_jax/accelerators.py) it also projects the
config's whole run: XLA's FLOPs per step (summed over the devices) x `total_steps`, on
`--chips` chips (default: --devices) of that kind at `--mfu` of their published bfloat16 peak:

  python -m avrl_jax.preflight --config configs/ab_vit_s16_cc12m.py:ab_dino --devices 8 \
      --target h100 --mfu 0.4

Nothing is allocated: the model, optimizer state and batch are abstract (shapes, dtypes and
shardings); XLA compiles for `--devices` host-platform devices. Per-device figures are those
XLA reports for the CPU backend: use them to compare configs and spot what does not fit, not
as exact TPU numbers.
"""

import os

from absl import flags
from ml_collections import config_flags

from avrl_jax import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file.")
_DEVICES = flags.DEFINE_integer("devices", 8, "Simulated devices of the mesh.")
_TARGET = flags.DEFINE_string("target", None, "Accelerator kind to project the run on (v4, h100).")
_CHIPS = flags.DEFINE_integer("chips", None, "Chips of the projection (default: --devices).")
_MFU = flags.DEFINE_float("mfu", 0.4, "Model FLOPs utilisation assumed by the projection.")
_PEAK = flags.DEFINE_float("peak_tflops", None, "Peak TFLOP/s per chip, for a kind not listed.")
flags.mark_flags_as_required(["config"])

GIB = 2**30


def abstract_batch(config, mesh):
    """ShapeDtypeStructs of one global batch, sharded over the batch axes."""
    import jax
    import jax.numpy as jnp

    from avrl_jax import sharding
    from avrl_jax.train import stream_configs

    batch_sharding = sharding.batch_sharding(mesh)
    shapes = {
        "index": (jnp.int32, ()),
        "label": (jnp.int32, ()),
        "caption_bytes": (jnp.uint8, (128,)),
    }
    batch = {}
    for name, (data, size, fields) in stream_configs(config).items():
        canvas = data.source_kwargs["canvas_size"]
        shapes["image"] = (jnp.uint8, (canvas, canvas, 3))
        batch[name] = {
            field: jax.ShapeDtypeStruct(
                (size, *shapes[field][1]), shapes[field][0], sharding=batch_sharding
            )
            for field in fields
        }
    return batch


def preflight(config, devices: int) -> dict:
    import jax
    from flax import nnx

    from avrl_jax import sharding
    from avrl_jax.config_validation import validate_config
    from avrl_jax.models.bootstrapper import build_model, count_params
    from avrl_jax.models.params import to_plain_params
    from avrl_jax.optimizer import make_optimizer
    from avrl_jax.train import jit_update, shard_state_like
    from avrl_jax.train_step import init_state

    assert jax.device_count() == devices, (jax.device_count(), devices)
    mesh = sharding.make_mesh(config.mesh)
    validate_config(config, batch_shards=sharding.batch_shards(mesh))
    model = nnx.eval_shape(lambda: build_model(config, nnx.Rngs(config.seed)))
    graphdef, params = to_plain_params(model)
    optimizer = make_optimizer(config)
    state = jax.eval_shape(lambda p: init_state(p, optimizer, config), params)
    state_sharding = shard_state_like(config, mesh, state)
    state = jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, state_sharding
    )
    update = jit_update(config, mesh, graphdef, optimizer, state_sharding)
    compiled = update.lower(state, abstract_batch(config, mesh)).compile()
    memory = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return {
        "mesh": dict(mesh.shape),
        "parameters": count_params(params),
        "flops_per_device": float(cost.get("flops", 0.0)),
        "argument_gib": memory.argument_size_in_bytes / GIB,
        "output_gib": memory.output_size_in_bytes / GIB,
        "temp_gib": memory.temp_size_in_bytes / GIB,
        "generated_code_gib": memory.generated_code_size_in_bytes / GIB,
    }


def main(argv):
    del argv
    # Before JAX starts: the simulated devices of the requested mesh.
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_force_host_platform_device_count={_DEVICES.value}"
    )
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    report = preflight(_CONFIG.value, _DEVICES.value)
    print(f"mesh {report['mesh']}  parameters {report['parameters']:,}")
    print(f"per device: {report['flops_per_device'] / 1e9:.4g} GFLOP per step")
    print(
        f"per device memory: arguments {report['argument_gib']:.4g} GiB, outputs "
        f"{report['output_gib']:.4g} GiB, temporaries {report['temp_gib']:.4g} GiB"
    )
    if _TARGET.value or _PEAK.value:
        print(projection_line(_CONFIG.value, report["flops_per_device"] * _DEVICES.value))


def projection_line(config, flops_per_step: float) -> str:
    """The whole run's projected wall time and chip-hours (see the module)."""
    from avrl_jax import accelerators

    if _PEAK.value:
        name, peak = _TARGET.value or "chip", _PEAK.value * accelerators.TERA
    else:
        accelerator = accelerators.find(_TARGET.value)
        name, peak = accelerator.name, accelerator.bf16_peak
    chips = _CHIPS.value or _DEVICES.value
    run = accelerators.project_run(flops_per_step, config.total_steps, chips, peak, _MFU.value)
    return (
        f"projected run: {config.total_steps:,} steps x {flops_per_step / 1e12:.4g} TFLOP = "
        f"{run.total_flops / 1e18:.4g} EFLOP; on {chips} x {name} ({peak / 1e12:.0f} TFLOP/s "
        f"bf16 each) at {_MFU.value:.0%} MFU: {run.seconds / 3600:.3g} h, "
        f"{run.chip_hours:,.0f} chip-hours"
    )


if __name__ == "__main__":
    cli.run(main)
