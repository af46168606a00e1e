"""Published peak FLOP/s of accelerators, and what a run costs on them (pure functions).

The peaks are the vendors' dense bfloat16 matmul figures per chip (no sparsity), the figure
model FLOPs utilisation (MFU) is quoted against. `benchmarks/train_step.py --device` divides
its measured FLOP/s by them; `python -m avrl_jax.preflight --target KIND` projects a config's
whole run from XLA's FLOPs per step.
"""

from __future__ import annotations

import dataclasses

TERA = 1e12


@dataclasses.dataclass(frozen=True)
class Accelerator:
    name: str
    bf16_peak: float  # dense bfloat16 FLOP/s per chip
    patterns: tuple[str, ...]  # lower-case pieces of jax's `device_kind` (or a user's --target)


# Order matters: the first entry whose pattern occurs in the kind wins ("h100 pcie" before
# "h100", "v5 lite" before "v5").
ACCELERATORS = (
    Accelerator("TPU v6e", 918 * TERA, ("v6 lite", "v6e", "trillium")),
    Accelerator("TPU v5e", 197 * TERA, ("v5 lite", "v5e", "v5litepod")),
    Accelerator("TPU v5p", 459 * TERA, ("v5p", "tpu v5")),
    Accelerator("TPU v4", 275 * TERA, ("v4",)),
    Accelerator("NVIDIA B200", 2250 * TERA, ("b200",)),
    Accelerator("NVIDIA H200", 989 * TERA, ("h200",)),
    Accelerator("NVIDIA H100 PCIe", 756 * TERA, ("h100 pcie", "h100-pcie")),
    Accelerator("NVIDIA H100", 989 * TERA, ("h100",)),
    Accelerator("NVIDIA A100", 312 * TERA, ("a100",)),
    Accelerator("NVIDIA L4", 121 * TERA, ("l4",)),
)


def find(kind: str) -> Accelerator:
    """The accelerator whose pattern occurs in `kind` (e.g. jax's "TPU v4", "NVIDIA H100 80GB
    HBM3", or a user's "v5p"); ValueError naming the known ones otherwise."""
    lowered = kind.lower()
    for accelerator in ACCELERATORS:
        if any(pattern in lowered for pattern in accelerator.patterns):
            return accelerator
    known = ", ".join(a.name for a in ACCELERATORS)
    raise ValueError(
        f"no published peak is known for {kind!r} (known: {known}); give the peak in TFLOP/s "
        "instead (--peak_tflops)"
    )


def mfu(flops_per_second: float, peak: float, chips: int = 1) -> float:
    """Model FLOPs utilisation: achieved FLOP/s over `chips` chips' summed peak."""
    return flops_per_second / (peak * chips)


@dataclasses.dataclass(frozen=True)
class Projection:
    total_flops: float
    seconds: float
    chip_hours: float


def project_run(flops_per_step: float, steps: int, chips: int, peak: float, mfu: float):
    """The wall time and chip-hours of `steps` steps of `flops_per_step` (summed over every
    device) on `chips` chips of `peak` FLOP/s each running at `mfu`."""
    if not (chips >= 1 and peak > 0 and 0 < mfu <= 1):
        raise ValueError(f"need chips >= 1, peak > 0 and 0 < mfu <= 1; got {chips}, {peak}, {mfu}")
    total = flops_per_step * steps
    seconds = total / (chips * peak * mfu)
    return Projection(total_flops=total, seconds=seconds, chip_hours=seconds * chips / 3600)
