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

`--sweep NAME=V1,V2,...` (repeatable; batch, views, resolution) varies one size at a time from
the config's and writes a table and a plot of step time and efficiency against each (OUT/sweep.md,
OUT/sweep.png), so that cost growth is visible:

  .venv/bin/python benchmarks/train_step.py --config configs/default.py \
      --sweep batch=8,16,32 --sweep views=2,4,8 --sweep resolution=16,32,64 --out /tmp/sweep
"""

import os
import resource
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
_SWEEP = flags.DEFINE_multi_string(
    "sweep", None, "NAME=V1,V2,...: batch, views (per bootstrap image) or resolution (px)."
)
_OUT = flags.DEFINE_string("out", "benchmarks/results", "Where --sweep writes sweep.md/.png.")


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


def peak_rss_gib() -> float:
    """The process's resident-set high-water mark so far (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def measure_step(config, steps: int) -> dict[str, float]:
    mesh = sharding.make_mesh(config.mesh)
    trainer = build_trainer(config, mesh)
    iterators = {name: iter(ds) for name, ds in make_streams(config).items()}
    batch = sharding.global_batch({k: next(it) for k, it in iterators.items()}, mesh)
    start = time.perf_counter()
    compiled = trainer.update.lower(trainer.state, batch).compile()
    compile_s = time.perf_counter() - start
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    flops = float(cost["flops"])
    state = trainer.state
    state, metrics = compiled(state, batch)  # warm-up
    jax.block_until_ready(metrics)
    per_step = []
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        start = time.perf_counter()
        state, metrics = compiled(state, batch)
        jax.block_until_ready(metrics)
        per_step.append(time.perf_counter() - start)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps
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
        "compile_s": compile_s,
        "peak_rss_gib": peak_rss_gib(),
        "page_faults_per_step": faults,
    }


def measure_pair(config, steps: int) -> dict[str, dict[str, float]]:
    """The base-only step, then the AB step, of `config` (base-only first: the process's RSS
    high-water mark after it is its own)."""
    base_config = config.copy_and_resolve_references()
    base_config.objective.ab_weight = 0.0
    base = measure_step(base_config, steps)
    return {"AB step": measure_step(config, steps), "base-only step": base}


# --sweep NAME=V1,V2,...: the field(s) each value sets.
def set_batch(config, value: int) -> None:
    """The annotation batch, the bootstrap batch kept in the config's ratio to it."""
    ratio = config.bootstrap_batch_size / config.annotation_batch_size
    config.annotation_batch_size = value
    config.bootstrap_batch_size = max(1, round(value * ratio))


def set_views(config, value: int) -> None:
    """Views per bootstrap image (the AB step's episode length; the base step's crops stay)."""
    config.env.num_views = value


def set_resolution(config, value: int) -> None:
    config.env.view_size = value


SWEEPS = {"batch": set_batch, "views": set_views, "resolution": set_resolution}
# What a step's time is divided by to compare values (1.00 in the table: linear in it).
UNITS = {"batch": lambda v: v, "views": lambda v: v, "resolution": lambda v: v * v}


def parse_sweeps(specs: list[str]) -> list[tuple[str, list[int]]]:
    out = []
    for spec in specs:
        name, _, values = spec.partition("=")
        if name not in SWEEPS or not values:
            sys.exit(f"error: --sweep {spec!r}: want NAME=V1,V2,... with NAME in {list(SWEEPS)}")
        out.append((name, [int(v) for v in values.split(",")]))
    return out


def relative_cost(name: str, value: int, results: dict, first_value: int, first: dict, key: str):
    """`key`'s step time per unit of `name` at `value`, over the same at the first value (1.00:
    linear). Views change only the AB step's bootstrap episodes: the AB step's cost per view is
    what it adds to the base-only step, and the base-only step's is its plain time (1.00:
    unchanged)."""
    unit = UNITS[name]
    if name == "views" and key == "base-only step":
        unit = lambda v: 1  # noqa: E731

    def cost(r):
        ms = r[key]["step_ms"]
        if name == "views" and key == "AB step":
            ms -= r["base-only step"]["step_ms"]
        return ms

    return (cost(results) / unit(value)) / (cost(first) / unit(first_value))


def run_sweeps(config, sweeps, steps: int, peak: float, out_dir: str) -> None:
    """Each dimension alone, from the config's values: sweep.md (a table per dimension, with
    the step time per unit (image, view, pixel) relative to the first value: 1.00 = linear in
    it) and sweep.png (step time and fraction of peak against each)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    lines = [f"# Step time sweeps: {_CONFIG.value.objective.base}, {jax.devices()[0].device_kind}"]
    figure, axes = plt.subplots(len(sweeps), 2, figsize=(10, 3.2 * len(sweeps)), squeeze=False)
    for row, (name, values) in enumerate(sweeps):
        rows = []
        for value in values:
            swept = config.copy_and_resolve_references()
            SWEEPS[name](swept, value)
            rows.append((value, measure_pair(swept, steps)))
            print(f"sweep {name}={value}: done", flush=True)
        lines += ["", f"## {name}", ""]
        lines.append(
            "| " + name + " | AB ms | base ms | AB ms/unit (rel.) | base ms/unit (rel.) "
            "| AB of peak | base of peak | AB compile s | peak RSS GiB |"
        )
        lines.append("|" + "---|" * 9)
        first = rows[0]
        for value, r in rows:
            ab, base = r["AB step"], r["base-only step"]
            rel = [
                relative_cost(name, value, r, *first, key) for key in ("AB step", "base-only step")
            ]
            lines.append(
                f"| {value} | {ab['step_ms']:.1f} | {base['step_ms']:.1f} | {rel[0]:.2f} "
                f"| {rel[1]:.2f} | {ab['gflop_per_sec'] * 1e9 / peak:.1%} "
                f"| {base['gflop_per_sec'] * 1e9 / peak:.1%} | {ab['compile_s']:.1f} "
                f"| {ab['peak_rss_gib']:.2f} |"
            )
        for key, label in (("AB step", "AB"), ("base-only step", "base only")):
            xs = [v for v, _ in rows]
            axes[row][0].plot(xs, [r[key]["step_ms"] for _, r in rows], "o-", label=label)
            fraction = [r[key]["gflop_per_sec"] * 1e9 / peak for _, r in rows]
            axes[row][1].plot(xs, fraction, "o-", label=label)
        axes[row][0].set(xlabel=name, ylabel="step ms")
        axes[row][1].set(xlabel=name, ylabel="fraction of matmul peak", ylim=(0, None))
        axes[row][0].legend()
    figure.tight_layout()
    figure.savefig(os.path.join(out_dir, "sweep.png"), dpi=100)
    with open(os.path.join(out_dir, "sweep.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out_dir}/sweep.md and {out_dir}/sweep.png")


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
    print(f"devices: {jax.device_count()} x {kind}")
    print(f"{jnp.dtype(dtype).name} matmul peak ({_MATMUL_SIZE.value}^3): {peak / 1e9:.1f} GFLOP/s")
    if published:
        print(f"published bf16 peak: {published / 1e12:.0f} TFLOP/s per device (MFU against it)")
    if _SWEEP.value:
        run_sweeps(config, parse_sweeps(_SWEEP.value), _STEPS.value, peak, _OUT.value)
        return
    results = measure_pair(config, _STEPS.value)
    groups = make_objective(config).crop_groups()
    crops = " + ".join(f"{g.count} x {g.size}px" for g in groups)
    print(
        f"encoder: {config.model.encoder.variant}/{config.model.encoder.patch_size} "
        f"depth {config.model.encoder.depth}, views {config.env.view_size}px; "
        f"{config.objective.base}: {config.annotation_batch_size} annotation images x "
        f"({crops}) crops + {config.bootstrap_batch_size} x {config.env.num_views} bootstrap"
    )
    header = (
        f"{'step':<16}{'ms':>9}{'img/s':>9}{'views/s':>9}{'GFLOP':>9}{'GFLOP/s':>9}"
        f"{'of peak':>9}{'compile s':>10}{'RSS GiB':>9}{'faults/step':>12}"
    )
    print(header + (f"{'MFU':>9}" if published else ""))
    for name, r in results.items():
        # XLA's FLOPs are those of one device's program: the per-device rate.
        line = (
            f"{name:<16}{r['step_ms']:>9.1f}{r['images_per_sec']:>9.1f}{r['views_per_sec']:>9.1f}"
            f"{r['gflop_per_step']:>9.2f}{r['gflop_per_sec']:>9.1f}"
            f"{r['gflop_per_sec'] * 1e9 / peak:>9.1%}{r['compile_s']:>10.1f}"
            f"{r['peak_rss_gib']:>9.2f}{r['page_faults_per_step']:>12.0f}"
        )
        if published:
            line += f"{accelerators.mfu(r['gflop_per_sec'] * 1e9, published):>9.1%}"
        print(line)
    print("RSS: the process's high-water mark after each step was measured (base-only first).")


if __name__ == "__main__":
    app.run(main)
