"""img2dataset-style webdataset tar shards of (image, caption) pairs, e.g. CC12M.

A shard `00000.tar` holds samples as consecutive members sharing a key (webdataset: the member
name up to the first dot of its base name): `000000012.jpg` (or .jpeg/.png/.webp), `.txt`
(caption), optionally `.cls` (integer label) and `.json` (metadata, ignored). Samples are
indexed once, at construction, by reading the tar headers (not the images); reads then seek
straight to the bytes. Indexing reads every header, so for CC12M-sized corpora (10M+ samples)
convert once with `python -m avrl_jax.ingest shards ...` and train from the ArrayRecord output.
"""

from __future__ import annotations

import glob
import logging
import os
import tarfile
from collections.abc import Sequence

import numpy as np

from avrl_jax.data.records import Record
from avrl_jax.data.robust_source import RobustSource

IMAGE_SUFFIXES = ("jpg", "jpeg", "png", "webp")
CAPTION_SUFFIX = "txt"
LABEL_SUFFIX = "cls"


def find_shards(path: str) -> list[str]:
    """`path` as a folder (its *.tar, recursive), a glob, or one tar file -> sorted paths."""
    if os.path.isdir(path):
        found = glob.glob(os.path.join(path, "**", "*.tar"), recursive=True)
    else:
        found = glob.glob(path)
    if not found:
        raise FileNotFoundError(f"no .tar shards at {path!r}")
    return sorted(found)


def _split_name(name: str) -> tuple[str, str]:
    """'dir/000012.jpg' -> ('dir/000012', 'jpg'); webdataset splits at the first dot."""
    folder, base = os.path.split(name)
    stem, _, suffix = base.partition(".")
    return os.path.join(folder, stem) if folder else stem, suffix.lower()


def index_shard(path: str) -> list[dict]:
    """The samples of one tar, in member order: dicts with key and (offset, size) per part.

    Samples without an image member are kept (the reader reports them as bad), so the sample
    count of a shard does not depend on its content.
    """
    samples: dict[str, dict] = {}
    with tarfile.open(path, "r:") as tar:  # "r:": plain tar, so offsets are file offsets
        try:
            for member in tar:
                if not member.isfile():
                    continue
                key, suffix = _split_name(member.name)
                sample = samples.setdefault(key, {"key": key})
                if suffix in IMAGE_SUFFIXES and "image" not in sample:
                    sample["image"] = (member.offset_data, member.size)
                elif suffix in (CAPTION_SUFFIX, LABEL_SUFFIX):
                    sample[suffix] = (member.offset_data, member.size)
        except (tarfile.TarError, OSError) as e:
            # A truncated or damaged shard: keep the samples before the damage (a cut-off last
            # image then reads short and counts as a truncated record).
            logging.warning("%s: tar damaged after %d samples: %s", path, len(samples), e)
    return list(samples.values())


def _read_span(f, span: tuple[int, int] | None) -> bytes | None:
    if span is None:
        return None
    f.seek(span[0])
    return f.read(span[1])


class TarShardReader:
    """Random access to the samples of a list of tar shards (shard order, then member order)."""

    def __init__(self, shards: Sequence[str]):
        self.shards = list(shards)
        rows = []  # (shard, image off, image size, txt off, txt size, cls off, cls size)
        self.keys: list[str] = []
        for s, path in enumerate(self.shards):
            name = os.path.basename(path)
            for sample in index_shard(path):
                spans = [sample.get(part, (-1, -1)) for part in ("image", "txt", "cls")]
                rows.append((s, *spans[0], *spans[1], *spans[2]))
                self.keys.append(f"{name}/{sample['key']}")
        # One int64 table instead of per-sample dicts: small to pickle into workers.
        self.table = np.array(rows, np.int64).reshape(-1, 7)

    def __len__(self) -> int:
        return len(self.keys)

    def __repr__(self) -> str:
        return f"TarShardReader({len(self.shards)} shards, {len(self)} samples)"

    def key(self, index: int) -> str:
        return self.keys[index]

    def read(self, index: int) -> Record:
        s, image_off, image_size, txt_off, txt_size, cls_off, cls_size = self.table[index]
        if image_off < 0:
            raise FileNotFoundError(f"{self.keys[index]} has no image member")
        with open(self.shards[s], "rb") as f:
            image = _read_span(f, (int(image_off), int(image_size)))
            text = _read_span(f, (int(txt_off), int(txt_size)) if txt_off >= 0 else None)
            cls = _read_span(f, (int(cls_off), int(cls_size)) if cls_off >= 0 else None)
        caption = text.decode("utf-8", errors="replace").strip() if text else ""
        label = int(cls.decode().strip()) if cls else -1
        return Record(key=self.keys[index], image=image, label=label, caption=caption)


def caption_shards_source(
    split: str, *, path: str, canvas_size: int, **robust_kwargs
) -> RobustSource:
    """Registered as "caption_shards": source_kwargs = dict(path=DIR_OR_GLOB, canvas_size=...).

    `path/<split>/` is used when it exists. robust_kwargs go to RobustSource.
    """
    root = os.path.join(path, split)
    return RobustSource(
        TarShardReader(find_shards(root if os.path.isdir(root) else path)),
        canvas_size=canvas_size,
        **robust_kwargs,
    )
