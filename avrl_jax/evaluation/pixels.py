"""Pixel baselines for the probe tasks: what a probe reaches without any encoder.

Features of a task's normalised views (`images f32[N, s, s, 3]`, as `probe_runner.task_data`
renders them):
- `raw`: the flattened normalised view, f32[N, s*s*3].
- `colour_invariant`: per pixel, the Euclidean distance over RGB (in [0, 1] units, the
  normalisation undone) between the pixel and the image's mean colour, flattened f32[N, s*s].
  Invariant to the objects' and background's hue up to contrast: recolouring an object
  changes the feature only through how far its colour lies from the image's mean.

They are probed like an encoder's pooled features, by the same linear probe (with its LR x WD
sweep) and kNN (`avrl_jax.evaluation.probe_runner.PROBES`); the MAP probe needs patch
tokens and is not defined for pixels (a study reports it as missing).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from avrl_jax.env.render import NORM_MEAN, NORM_STD
from avrl_jax.evaluation import probe_runner
from avrl_jax.evaluation.features import Features

# The probes that read pooled features, and so are defined for pixel features too.
PIXEL_PROBES = ("linear", "knn")


def raw(images: np.ndarray) -> np.ndarray:
    """f32[N, s, s, 3] normalised views -> f32[N, s*s*3], the views flattened."""
    images = np.asarray(images, np.float32)
    return images.reshape(images.shape[0], -1)


def colour_invariant(images: np.ndarray) -> np.ndarray:
    """f32[N, s, s, 3] normalised views -> f32[N, s*s]: each pixel's Euclidean RGB distance
    to its image's mean colour (invariant to hue up to contrast; a uniform image gives 0)."""
    rgb = np.asarray(images, np.float32) * NORM_STD + NORM_MEAN  # back to [0, 1]
    mean = rgb.mean(axis=(1, 2), keepdims=True)
    distance = np.sqrt(np.sum((rgb - mean) ** 2, axis=-1))
    return distance.reshape(distance.shape[0], -1).astype(np.float32)


PIXEL_FEATURES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "raw": raw,
    "colour_invariant": colour_invariant,
}


def pixel_features(name: str, images: np.ndarray) -> np.ndarray:
    """The pixel features `name` ("raw" | "colour_invariant") of normalised views."""
    if name not in PIXEL_FEATURES:
        raise ValueError(f"unknown pixel baseline {name!r}; valid: {sorted(PIXEL_FEATURES)}")
    return PIXEL_FEATURES[name](images)


def probe_pixels(name: str, data: dict, num_classes: int, probe_config) -> dict[str, float]:
    """The linear and kNN probes (as enabled in `probe_config`) on pixel features.

    Args:
      name: "raw" or "colour_invariant".
      data: `probe_runner.task_data(...)`: {"train" | "test": (images, labels)}.
      num_classes: the task's number of classes.
      probe_config: a configs/probe_*.py config (its `linear` and `knn` sections).

    Returns:
      Flat metrics as `probe_runner.run_probes` names them ("linear/accuracy", "knn/accuracy_k20",
      ..., "num_train", "num_test", "num_classes", "majority_baseline"), plus "time/<probe>_s".
    """
    split = {
        s: Features(pixel_features(name, images), labels=np.asarray(labels, np.int32))
        for s, (images, labels) in data.items()
    }
    train, test = split["train"], split["test"]
    metrics = {
        "num_train": len(train),
        "num_test": len(test),
        "num_classes": num_classes,
        "majority_baseline": probe_runner.majority_baseline(train.labels, test.labels),
    }
    timings = {}
    for probe_name in PIXEL_PROBES:
        section = probe_config[probe_name]
        if not section.enabled:
            continue
        options = {k: v for k, v in dict(section).items() if k != "enabled"}
        start = time.perf_counter()
        results = probe_runner.PROBES[probe_name](
            train, test, probe_runner.TaskInfo(num_classes), options, probe_config.seed, None
        )
        metrics.update({f"{probe_name}/{key}": value for key, value in results.items()})
        timings[f"time/{probe_name}_s"] = time.perf_counter() - start
    return {key: float(value) for key, value in {**metrics, **timings}.items()}
