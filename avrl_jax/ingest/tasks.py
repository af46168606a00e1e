"""What to ingest and how it splits into output shards: one task per output shard.

- folder: the sorted image files, `records_per_shard` per shard;
- shards: one output shard per input tar (img2dataset shards are already sized);
- videos: one output shard per video (frames sampled at `fps`, decoded in one pass).

A task is self-contained (paths and labels, no open files), so it pickles into a local worker
process or a Beam worker; `task_records` yields its records in a fixed order, so a task always
writes the same bytes.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Iterator

import numpy as np
from PIL import Image

from avrl_jax.data import decode
from avrl_jax.data.folder_source import FolderReader
from avrl_jax.data.records import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    Record,
    labels_from_folders,
    list_files,
)
from avrl_jax.data.shards_source import TarShardReader, find_shards

KINDS = ("folder", "shards", "videos")


@dataclasses.dataclass(frozen=True)
class IngestSpec:
    """One conversion (the CLI's arguments).

    Attributes:
      kind: "folder", "shards" or "videos".
      input: the input folder (folder, videos) or a folder / glob of .tar shards.
      output: the output folder (created).
      split: names the output shards `<split>-k-of-n.array_record` and its metadata.
      records_per_shard: images per output shard (folder only).
      labels_from_subfolders: class labels from the first folder level (folder, videos).
      fps: frames sampled per second of video.
      jpeg_quality: quality of the JPEG-encoded video frames.
      max_pixels, max_aspect_ratio: the decode limits (decode.DecodeOptions).
      max_bad_fraction: stop with an error when more records than this fraction are bad.
      min_records: records to see before judging the fraction.
    """

    kind: str
    input: str
    output: str
    split: str = "train"
    records_per_shard: int = 1000
    labels_from_subfolders: bool = True
    fps: float = 1.0
    jpeg_quality: int = 95
    max_pixels: int = decode.DEFAULT_MAX_PIXELS
    max_aspect_ratio: float = decode.DEFAULT_MAX_ASPECT_RATIO
    max_bad_fraction: float = 0.01
    min_records: int = 1000

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind={self.kind!r}; choose one of {KINDS}")
        if self.records_per_shard < 1:
            raise ValueError(f"records_per_shard must be >= 1, got {self.records_per_shard}")

    @property
    def decode_options(self) -> decode.DecodeOptions:
        # canvas_size is unused by the checks ingest runs; 1 satisfies the validation.
        return decode.DecodeOptions(
            canvas_size=1, max_pixels=self.max_pixels, max_aspect_ratio=self.max_aspect_ratio
        )

    def options(self) -> dict:
        """The fields that decide the output bytes: a shard written under other options is
        redone on resume. (Not the paths, nor the bad-fraction limits, which decide only
        whether the run stops.)"""
        fields = dataclasses.asdict(self)
        for name in ("input", "output", "max_bad_fraction", "min_records"):
            del fields[name]
        return fields


@dataclasses.dataclass(frozen=True)
class ShardTask:
    """Output shard `index` of `count`: its inputs (paths relative to the input root for
    folder and videos, tar paths for shards) and their labels (-1: none)."""

    index: int
    count: int
    inputs: tuple[str, ...]
    labels: tuple[int, ...]


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def plan(spec: IngestSpec) -> tuple[list[ShardTask], tuple[str, ...]]:
    """The tasks (one per output shard, in order) and the class names (may be empty)."""
    if spec.kind == "shards":
        tars = find_shards(spec.input)
        groups = [((t,), (-1,)) for t in tars]
        class_names: tuple[str, ...] = ()
    else:
        extensions = IMAGE_EXTENSIONS if spec.kind == "folder" else VIDEO_EXTENSIONS
        relpaths = list_files(spec.input, extensions)
        if spec.labels_from_subfolders:
            labels, class_names = labels_from_folders(relpaths)
        else:
            labels, class_names = np.full(len(relpaths), -1, np.int32), ()
        size = spec.records_per_shard if spec.kind == "folder" else 1
        groups = [
            (tuple(relpaths[a:b]), tuple(int(x) for x in labels[a:b]))
            for a, b in _chunks(len(relpaths), size)
        ]
    if not groups:
        raise FileNotFoundError(f"no {spec.kind} inputs found at {spec.input!r}")
    tasks = [
        ShardTask(index=i, count=len(groups), inputs=inputs, labels=labels)
        for i, (inputs, labels) in enumerate(groups)
    ]
    return tasks, class_names


def _checked_image_record(record: Record, options: decode.DecodeOptions) -> Record:
    """Keeps the original encoded bytes after checking they decode (raises BadRecordError)."""
    decode.check_image(bytes(record.image), options)
    return record


def _encoded_frame(record: Record, spec: IngestSpec) -> Record:
    """A decoded video frame -> the same record with JPEG bytes (raises BadRecordError)."""
    frame = np.asarray(record.image)  # uint8 [H, W, 3] from PyAV's rgb24
    decode.check_size(frame.shape[1], frame.shape[0], spec.decode_options)
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=spec.jpeg_quality)
    return dataclasses.replace(record, image=buffer.getvalue())


def _as_bad(error: Exception) -> decode.BadRecordError:
    if isinstance(error, decode.BadRecordError):
        return error
    return decode.BadRecordError("read_error", f"{type(error).__name__}: {error}")


def task_records(
    spec: IngestSpec, task: ShardTask
) -> Iterator[tuple[str, Record | decode.BadRecordError]]:
    """(key, record ready to serialize, or why it is skipped), in the task's fixed order."""
    options = spec.decode_options
    if spec.kind == "videos":
        yield from _video_records(spec, task)
        return
    if spec.kind == "folder":
        reader = FolderReader(spec.input, relpaths=list(task.inputs), labels_from_subfolders=False)
        labels = task.labels
    else:
        try:
            reader = TarShardReader(task.inputs)
        except Exception as e:  # not a tar at all: the whole input counts as one bad record
            yield os.path.basename(task.inputs[0]), _as_bad(e)
            return
        labels = None
    for i in range(len(reader)):
        try:
            record = reader.read(i)
            if labels is not None:
                record = dataclasses.replace(record, label=labels[i])
            yield record.key, _checked_image_record(record, options)
        except Exception as e:
            yield reader.key(i), _as_bad(e)


def _video_records(
    spec: IngestSpec, task: ShardTask
) -> Iterator[tuple[str, Record | decode.BadRecordError]]:
    from avrl_jax.data.video_source import VideoReader  # PyAV only when ingesting videos

    reader = VideoReader(spec.input, fps=spec.fps, relpaths=list(task.inputs))
    for relpath, reason in reader.unreadable:
        yield relpath, decode.BadRecordError("read_error", reason)
    if not reader.relpaths:
        return
    reader.video_labels = np.asarray(task.labels, np.int32)
    for index, item in reader.sequential(0):
        key = reader.key(index)
        if isinstance(item, Exception):
            yield key, _as_bad(item)
            continue
        try:
            yield key, _encoded_frame(item, spec)
        except Exception as e:
            yield key, _as_bad(e)
