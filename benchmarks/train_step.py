r"""Throughput of the AB update step and of the base-only step with the same encoder.

Prints, for each step: images/s and views/s (every crop the base objective renders: SimCLR's
2, DINO's 2 global + k local multi-crop views, CLIP +Aug's extra views; plus the bootstrap
views), the achieved FLOP/s (XLA's cost analysis of the compiled step divided by the measured
step time) and that figure as a fraction of a float32 matmul peak measured in the same run.

  .venv/bin/python benchmarks/train_step.py --config configs/default.py [--steps 20]
  .venv/bin/python benchmarks/train_step.py --config configs/default.py:dino   # multi-crop

On a GPU or TPU, `--device` runs the encoder in bfloat16 and reports model FLOPs utilisation
(MFU): the achieved FLOP/s over the device's published bfloat16 peak (avrl_jax/accelerators.py,
by jax's device kind; `--peak_tflops` for one not listed), beside the measured matmul peak:

  python benchmarks/train_step.py --config configs/ab_vit_s16_cc12m.py:ab_dino,scenes --device
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # configs/

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from avrl_jax import accelerators, sharding
from avrl_jax.objectives.registry import make_objective
from avrl_jax.train import build_trainer, make_streams

_CONFIG = config_flags.DEFINE_config_file("config", "configs/default.py", "Training config.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps per measurement.")
_MATMUL_SIZE = flags.DEFINE_integer("matmul_size", 2048, "Side of the peak-measuring matmul.")
_DEVICE = flags.DEFINE_boolean(
    "device", False, "On a GPU/TPU: bfloat16 encoder, MFU against the published peak."
)
_PEAK = flags.DEFINE_float("peak_tflops", None, "With --device: peak TFLOP/s per device.")


def best_seconds(fn, repeats: int) -> float:
    """Fastest of `repeats` timed calls (the machine is shared; the minimum is least noisy)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_peak(size: int, dtype=jnp.float32) -> float:
    """FLOP/s of a [size, size] @ [size, size] matmul in `dtype`, chained 4 times per call."""
    a = (jax.random.normal(jax.random.key(0), (size, size)) / np.sqrt(size)).astype(dtype)

    @jax.jit
    def chain(x):
        for _ in range(4):
            x = x @ a
        return x

    chain(a).block_until_ready()
    seconds = best_seconds(lambda: chain(a).block_until_ready(), repeats=5)
    return 4 * 2 * size**3 / seconds


def measure_step(config, steps: int) -> dict[str, float]:
    mesh = sharding.make_mesh(config.mesh)
    trainer = build_trainer(config, mesh)
    iterators = {name: iter(ds) for name, ds in make_streams(config).items()}
    batch = sharding.global_batch({k: next(it) for k, it in iterators.items()}, mesh)
    compiled = trainer.update.lower(trainer.state, batch).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    flops = float(cost["flops"])
    state = trainer.state
    state, metrics = compiled(state, batch)  # warm-up
    jax.block_until_ready(metrics)
    per_step = []
    for _ in range(steps):
        start = time.perf_counter()
        state, metrics = compiled(state, batch)
        jax.block_until_ready(metrics)
        per_step.append(time.perf_counter() - start)
    seconds = float(np.median(per_step))
    images = config.annotation_batch_size
    # Every crop the base objective renders counts (SimCLR 2, DINO 2 global + k local, ...).
    views = config.annotation_batch_size * make_objective(config).crops_per_image()
    if config.objective.ab_weight > 0:
        images += config.bootstrap_batch_size
        views += config.bootstrap_batch_size * config.env.num_views
    return {
        "step_ms": seconds * 1e3,
        "images_per_sec": images / seconds,
        "views_per_sec": views / seconds,
        "gflop_per_step": flops / 1e9,
        "gflop_per_sec": flops / seconds / 1e9,
    }


def main(argv):
    del argv
    config = _CONFIG.value
    kind = jax.devices()[0].device_kind
    published = None
    if _DEVICE.value:
        if jax.default_backend() == "cpu":
            sys.exit("error: --device measures a GPU or TPU; this JAX sees only CPUs")
        config.model.encoder.dtype = "bfloat16"
        published = _PEAK.value * 1e12 if _PEAK.value else accelerators.find(kind).bf16_peak
    dtype = jnp.bfloat16 if _DEVICE.value else jnp.float32
    peak = matmul_peak(_MATMUL_SIZE.value, dtype)
    base_config = config.copy_and_resolve_references()
    base_config.objective.ab_weight = 0.0
    results = {
        "AB step": measure_step(config, _STEPS.value),
        "base-only step": measure_step(base_config, _STEPS.value),
    }
    print(f"devices: {jax.device_count()} x {kind}")
    print(f"{jnp.dtype(dtype).name} matmul peak ({_MATMUL_SIZE.value}^3): {peak / 1e9:.1f} GFLOP/s")
    if published:
        print(f"published bf16 peak: {published / 1e12:.0f} TFLOP/s per device (MFU against it)")
    groups = make_objective(config).crop_groups()
    crops = " + ".join(f"{g.count} x {g.size}px" for g in groups)
    print(
        f"encoder: {config.model.encoder.variant}/{config.model.encoder.patch_size} "
        f"depth {config.model.encoder.depth}, views {config.env.view_size}px; "
        f"{config.objective.base}: {config.annotation_batch_size} annotation images x "
        f"({crops}) crops + {config.bootstrap_batch_size} x {config.env.num_views} bootstrap"
    )
    header = (
        f"{'step':<16}{'ms':>9}{'img/s':>9}{'views/s':>9}{'GFLOP':>9}{'GFLOP/s':>9}{'of peak':>9}"
    )
    print(header + (f"{'MFU':>9}" if published else ""))
    for name, r in results.items():
        # XLA's FLOPs are those of one device's program: the per-device rate.
        line = (
            f"{name:<16}{r['step_ms']:>9.1f}{r['images_per_sec']:>9.1f}{r['views_per_sec']:>9.1f}"
            f"{r['gflop_per_step']:>9.2f}{r['gflop_per_sec']:>9.1f}"
            f"{r['gflop_per_sec'] * 1e9 / peak:>9.1%}"
        )
        if published:
            line += f"{accelerators.mfu(r['gflop_per_sec'] * 1e9, published):>9.1%}"
        print(line)


if __name__ == "__main__":
    app.run(main)
