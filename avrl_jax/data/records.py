"""What every real-data reader returns, and the fixed-length byte fields batches carry.

A *reader* gives random access to raw records (encoded bytes or a decoded array, plus label,
caption and a human-readable key); `robust_source.RobustSource` turns any reader into a Grain
source of fixed-size canvases. Readers may raise anything from `read`: the source counts it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from absl import logging

MAX_CAPTION_LEN = 128  # bytes; the same width as the embedded scenes' `caption_bytes`
MAX_KEY_LEN = 128  # bytes of a bad record's key carried in `bad_key`

# Every still-image format PIL decodes without outside tools (animated GIF/WebP/APNG: the first
# frame; see tests/test_sources.py, which writes and reads one file of each).
IMAGE_EXTENSIONS = (
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".webp", ".gif", ".bmp", ".dib",
    ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico", ".jp2", ".j2k",
)  # fmt: skip
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")


@dataclasses.dataclass
class Record:
    """One raw example.

    Attributes:
      key: names the example for people (a relative path, `shard/key`, `video@12.000s`).
      image: encoded image bytes, or a decoded uint8 [H, W] / [H, W, C] array.
      label: class index, -1 when the source has no labels.
      caption: UTF-8 text, "" when the source has no captions.
    """

    key: str
    image: bytes | np.ndarray
    label: int = -1
    caption: str = ""


class RecordReader(Protocol):
    """Random access to raw records; cheap to pickle (Grain workers unpickle it)."""

    def __len__(self) -> int: ...

    def key(self, index: int) -> str:
        """The record's key without reading it (for error messages)."""
        ...

    def read(self, index: int) -> Record:
        """The record; may raise (I/O, decode): the caller counts and skips it."""
        ...


def encode_text(text: str, length: int, keep: str = "head") -> np.ndarray:
    """UTF-8 text -> uint8 [length], zero padded; longer text is cut at a character boundary.

    keep="head" keeps the start (captions), keep="tail" the end (paths: the file name matters).
    """
    data = text.encode("utf-8")
    if len(data) > length:
        data = data[:length] if keep == "head" else data[-length:]
        # Drop a partial multi-byte character at the cut.
        data = data.decode("utf-8", errors="ignore").encode("utf-8")
    out = np.zeros(length, np.uint8)
    out[: len(data)] = np.frombuffer(data, np.uint8)
    return out


def decode_text(row: np.ndarray) -> str:
    """uint8 [L] zero-padded UTF-8 (a `caption_bytes` or `bad_key` row) -> str."""
    return bytes(np.asarray(row, np.uint8)).rstrip(b"\0").decode("utf-8", errors="replace")


def list_files(root: str, extensions: Sequence[str]) -> list[str]:
    """Paths under `root` (recursive, following no symlinked folders) with these extensions.

    Sorted by relative path, so the order (hence every record index) is the same on every host
    and machine. Hidden files and folders (starting with ".") are skipped silently; other
    files of another type are skipped with a warning that counts them and names a few.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"no such folder: {root}")
    wanted = tuple(e.lower() for e in extensions)
    found, skipped = [], []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            relative = os.path.relpath(os.path.join(folder, name), root)
            (found if name.lower().endswith(wanted) else skipped).append(relative)
    if skipped:
        skipped.sort()
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        logging.warning(
            "%s: skipped %d file(s) not of a type read here (%s): %s%s",
            root,
            len(skipped),
            " ".join(extensions),
            ", ".join(skipped[:5]),
            more,
        )
    return sorted(found)


def labels_from_folders(relpaths: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class = first folder of each relative path (sorted names -> 0, 1, ...); -1 at the root.

    Returns:
      labels: int32 [N]; class_names: the sorted class folder names.
    """
    tops = [p.split(os.sep, 1)[0] if os.sep in p else None for p in relpaths]
    class_names = tuple(sorted({t for t in tops if t is not None}))
    lookup = {name: i for i, name in enumerate(class_names)}
    labels = np.array([-1 if t is None else lookup[t] for t in tops], np.int32)
    return labels, class_names


def resolve_split_root(path: str, split: str) -> str:
    """`path/split` when that folder exists (e.g. train/, val/), else `path` itself."""
    candidate = os.path.join(path, split)
    return candidate if os.path.isdir(candidate) else path
