"""The Grain input pipeline: source -> shuffle -> repeat -> index -> per-host slice -> batch.

No JAX here: Grain workers are spawned processes that unpickle the dataset and import this
module, and importing JAX in each of them would cost seconds and memory for nothing.

Every element carries `index`, its position in the global data stream (unique across epochs);
the device-side environment derives its randomness from it, so results do not depend on the host
count or on the worker count. Hosts decode only their own examples.

Sources: the embedded `scenes` and `objects`, and real data (see each module's docstring):
`tfds` (tfds.data_source over ArrayRecord), `image_folder`, `caption_shards` (img2dataset tar
shards), `video` (frames sampled at a rate) and `array_record` (the output of
`python -m avrl_jax.ingest`). Real-data elements also carry `bad_reason` and `bad_key`
(robust_source.py), which `bad_records.BadRecordMonitor` counts and removes on the host.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grain
import numpy as np

from avrl_jax.data import scenes
from avrl_jax.data.canvas import to_canvas  # noqa: F401  (re-exported: callers use pipeline.to_canvas)


def _lazy(module: str, factory: str) -> Callable[..., Any]:
    """A constructor imported on first use: `import pipeline` stays light (no tfds, no PyAV)."""

    def build(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), factory)(*args, **kwargs)

    build.__name__ = build.__qualname__ = factory
    return build


# Explicit registry: config files name a source; `make_source` builds it.
SOURCES: dict[str, Callable[..., Any]] = {
    "scenes": scenes.SceneSource,
    "objects": scenes.ObjectSource,
    "object_views": scenes.ObjectViewSource,
    "tfds": _lazy("avrl_jax.data.tfds_source", "tfds_source"),
    "image_folder": _lazy("avrl_jax.data.folder_source", "image_folder_source"),
    "caption_shards": _lazy("avrl_jax.data.shards_source", "caption_shards_source"),
    "video": _lazy("avrl_jax.data.video_source", "video_source"),
    "array_record": _lazy("avrl_jax.data.array_record_source", "array_record_source"),
}

ALWAYS_KEPT_FIELDS = ("image", "index")
# Kept whenever the source provides them, whatever `fields` says: the bad-record accounting of
# the real-data sources (bad_records.BadRecordMonitor reads and removes them on the host).
OPTIONAL_KEPT_FIELDS = ("bad_reason", "bad_key")

# One read thread per process, two batches ahead: the scene source is Python-bound, so a second
# thread only contends for the GIL (measured: 1,300 vs 1,700 scenes/s at batch 256), while one
# thread still overlaps decoding with the consumer's (GIL-free) device step. Grain's default (16
# threads, 500 elements ahead) would hold 500 whole batches here. Sources that decode with PIL
# release the GIL and may want more threads: pass read_options.
DEFAULT_READ_OPTIONS = grain.ReadOptions(num_threads=1, prefetch_buffer_size=2)


def make_source(name: str, split: str, **kwargs: Any) -> Any:
    """Builds the registered source `name` for `split` (kwargs go to its constructor).

    Real-data sources take `canvas_size` and `path` (or `dataset` for tfds) plus the decode
    limits `max_pixels` and `max_aspect_ratio`; see their modules.
    """
    if name not in SOURCES:
        raise ValueError(f"unknown source {name!r}; valid names: {sorted(SOURCES)}")
    return SOURCES[name](split=split, **kwargs)


# --------------------------------------------------------------------------------------------
# Transforms (module-level classes so that they pickle into worker processes).


class AddIndex(grain.transforms.MapWithIndex):
    """Adds `index` (int64 [], the stream position) and keeps only `fields` (None: all)."""

    def __init__(self, fields: Sequence[str] | None = None):
        self.fields = None if fields is None else tuple(dict.fromkeys(fields))

    def map_with_index(self, index: int, element: Mapping[str, Any]) -> dict[str, Any]:
        if self.fields is None:
            out = dict(element)
        else:
            missing = [f for f in self.fields if f not in element and f != "index"]
            if missing:
                raise KeyError(f"fields {missing} not in the source's keys {sorted(element)}")
            out = {f: element[f] for f in self.fields if f != "index"}
            out.update({f: element[f] for f in OPTIONAL_KEPT_FIELDS if f in element})
        out["index"] = np.int64(index)
        return out


class HostSliceMapDataset(grain.MapDataset):
    """Per-host slice of a stream that will be batched with global batch size G.

    Global batch k holds stream positions [k*G, (k+1)*G). Host p of P takes the contiguous
    block [k*G + p*b, k*G + (p+1)*b), b = G // P, so its j-th element is parent element
    (j // b) * G + p * b + j % b. Random access: a host reads (and decodes) only its own
    examples. A trailing partial global batch is dropped, so every host yields the same number
    of batches.
    """

    _MUTATES_ELEMENT_SPEC = False

    def __init__(
        self,
        parent: grain.MapDataset,
        global_batch_size: int,
        process_index: int,
        process_count: int,
    ):
        super().__init__(parent)
        self._global = global_batch_size
        self._local = global_batch_size // process_count
        self._offset = process_index * self._local
        parent_len = len(parent)
        # An infinite parent (repeat(None)) has length sys.maxsize: keep it "infinite".
        self._length = (
            sys.maxsize if parent_len >= sys.maxsize else (parent_len // self._global) * self._local
        )

    def __len__(self) -> int:
        return self._length

    def _parent_index(self, index: int) -> int:
        k, r = divmod(index, self._local)
        return k * self._global + self._offset + r

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        return self._parent[self._parent_index(index)]

    def _getitems(self, indices: Sequence[int]):
        return self._parent._getitems([self._parent_index(i) for i in indices])

    def __str__(self) -> str:
        return (
            f"HostSliceMapDataset(global_batch_size={self._global}, local={self._local}, "
            f"offset={self._offset})"
        )


# --------------------------------------------------------------------------------------------
# The dataset.


def make_dataset(
    source: Any,
    *,
    global_batch_size: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
    shuffle: bool = True,
    num_epochs: int | None = None,
    worker_count: int = 0,
    fields: Sequence[str] | None = None,
    read_options: grain.ReadOptions | None = None,
    worker_buffer_size: int = 2,
) -> grain.IterDataset:
    """The input pipeline of one host.

    Chain: source -> shuffle(seed) (a new order each epoch) -> repeat(num_epochs; None: forever)
    -> add `index` (stream position) -> this host's slice -> batch(b = G // P) -> mp_prefetch
    (if worker_count > 0). Batching precedes the worker split, so each worker builds whole
    batches and a batch's contents do not depend on worker_count.

    Args:
      source: a random-access source (`__len__`, `__getitem__` -> dict of numpy arrays).
      global_batch_size: G, summed over hosts.
      seed: shuffle seed, in [0, 2**32).
      process_index, process_count: this host and the host count (jax.process_index() and
        jax.process_count(), passed in: no JAX here).
      shuffle: shuffle each epoch (a different permutation per epoch).
      num_epochs: None repeats forever; otherwise the stream ends after the last full global
        batch of num_epochs epochs.
      worker_count: Grain worker processes (0: decode in this process's threads; AUTO_WORKERS,
        -1: `host_worker_count()`). The iterator's state is only valid for the same count.
      fields: keys to keep (`image` and `index` always kept, and OPTIONAL_KEPT_FIELDS when the
        source has them); None keeps all.
      read_options: per-process read threads and prefetch (default: the source's
        `read_options` attribute if it has one, else DEFAULT_READ_OPTIONS).
      worker_buffer_size: batches each worker process prepares ahead.

    Returns:
      An IterDataset of dicts of numpy arrays with leading dim b, including `index`: int64 [b].
      Its iterator is checkpointable with get_state()/set_state(); a state is only valid for
      the same global_batch_size, process_count and worker_count.
    """
    if global_batch_size < 1 or process_count < 1:
        raise ValueError(
            f"global_batch_size ({global_batch_size}) and process_count ({process_count}) "
            "must be >= 1"
        )
    if global_batch_size % process_count:
        raise ValueError(
            f"global_batch_size ({global_batch_size}) must be divisible by process_count "
            f"({process_count})"
        )
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index ({process_index}) must be in [0, {process_count})")
    if worker_count == AUTO_WORKERS:
        worker_count = host_worker_count()
    if worker_count < 0:
        raise ValueError(
            f"worker_count must be >= 0 (or {AUTO_WORKERS}: sized to the host), got {worker_count}"
        )
    if len(source) == 0:
        raise ValueError(f"source {source!r} is empty")

    ds = grain.MapDataset.source(source)
    if shuffle:
        ds = ds.shuffle(seed=seed)
    ds = ds.repeat(num_epochs)
    kept = None if fields is None else (*ALWAYS_KEPT_FIELDS, *fields)
    ds = ds.map_with_index(AddIndex(kept))
    ds = HostSliceMapDataset(ds, global_batch_size, process_index, process_count)
    ds = ds.batch(global_batch_size // process_count, drop_remainder=True)
    read_options = read_options or getattr(source, "read_options", None) or DEFAULT_READ_OPTIONS
    out = ds.to_iter_dataset(read_options)
    if worker_count > 0:
        ensure_absl_flags_parsed()
        out = out.mp_prefetch(
            grain.MultiprocessingOptions(
                num_workers=worker_count, per_worker_buffer_size=worker_buffer_size
            )
        )
    return out


AUTO_WORKERS = -1
MAX_AUTO_WORKERS = 16


def host_worker_count(cpus: int | None = None) -> int:
    """The Grain worker processes `worker_count=-1` means on a host with `cpus` CPUs (default:
    the CPUs this process may run on): none on up to 4 (a worker's start-up and transfers cost
    more than it decodes there; the read threads decode in this process), else half of them,
    at most MAX_AUTO_WORKERS (the other half runs the training process and XLA's threads)."""
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpus = cpus or 1
    return 0 if cpus <= 4 else min(MAX_AUTO_WORKERS, cpus // 2)


def ensure_absl_flags_parsed() -> None:
    """Marks absl flags parsed if nobody has parsed them (pytest, notebooks, plain scripts).

    Grain reads its settings from absl flags; reading an unparsed flag raises. Under an absl app
    (`app.run(main)`) the flags are already parsed and this does nothing, so `--grain_*` flags
    given on the command line keep their values.
    """
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
