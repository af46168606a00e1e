"""A folder of image files (recursive; every format of records.IMAGE_EXTENSIONS), labels
optionally from sub-folders; files of other types are skipped, counted and named.

  root/
    dog/001.jpg      label 0 ("dog" is the first class folder in sorted order)
    zebra/a/b.webp   label 1 (the first folder level names the class)
    loose.png        label -1 (files directly in root have no class)

If `root/<split>/` exists (train/, val/) the split reads that folder, else the whole root.
"""

from __future__ import annotations

import os

from avrl_jax.data.records import (
    IMAGE_EXTENSIONS,
    Record,
    labels_from_folders,
    list_files,
    resolve_split_root,
)
from avrl_jax.data.robust_source import RobustSource


class FolderReader:
    """Random access to image files; the file list is built once, sorted (see list_files)."""

    def __init__(
        self,
        root: str,
        *,
        relpaths: list[str] | None = None,
        labels_from_subfolders: bool = True,
        extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
    ):
        self.root = root
        self.relpaths = list_files(root, extensions) if relpaths is None else list(relpaths)
        if labels_from_subfolders:
            self.labels, self.class_names = labels_from_folders(self.relpaths)
        else:
            self.labels, self.class_names = None, ()

    def __len__(self) -> int:
        return len(self.relpaths)

    def __repr__(self) -> str:
        return f"FolderReader({self.root!r}, {len(self)} files, {len(self.class_names)} classes)"

    def key(self, index: int) -> str:
        return self.relpaths[index]

    def read(self, index: int) -> Record:
        with open(os.path.join(self.root, self.relpaths[index]), "rb") as f:
            data = f.read()
        label = -1 if self.labels is None else int(self.labels[index])
        return Record(key=self.relpaths[index], image=data, label=label)


def image_folder_source(
    split: str,
    *,
    path: str,
    canvas_size: int,
    labels_from_subfolders: bool = True,
    **robust_kwargs,
) -> RobustSource:
    """Registered as "image_folder": source_kwargs = dict(path=..., canvas_size=...).

    robust_kwargs (max_pixels, max_aspect_ratio, max_probes, read_threads) go to RobustSource.
    """
    reader = FolderReader(
        resolve_split_root(path, split), labels_from_subfolders=labels_from_subfolders
    )
    return RobustSource(
        reader, canvas_size=canvas_size, class_names=reader.class_names, **robust_kwargs
    )
