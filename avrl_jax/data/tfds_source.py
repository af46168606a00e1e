"""TFDS data sets prepared as ArrayRecord (`imagenet2012`, `coco/2017`, ...), read through
`tfds.data_source`: random access without TensorFlow.

Prepare once (on a machine with TensorFlow, or copy a prepared data_dir):
  tfds build imagenet2012 --file_format=array_record --data_dir=/data/tfds

TFDS decodes the image feature itself (PIL or OpenCV) into a uint8 array; decode errors and
arrays that fail the size checks are counted as bad records like any other source's. Data sets
whose builder code imports TensorFlow (e.g. coco) are read through `builder_dir` instead
(`tfds.builder_from_directory`, which needs only the prepared files).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from avrl_jax.data.records import Record
from avrl_jax.data.robust_source import RobustSource


def _lookup(example: Mapping[str, Any], path: str) -> Any:
    """example['a/b'] -> example['a']['b'] (TFDS nests features, e.g. 'captions/text')."""
    value: Any = example
    for part in path.split("/"):
        value = value[part]
    return value


def _first_text(value: Any) -> str:
    """A TFDS text feature (bytes, str, or an array/list of them) -> its first string."""
    if isinstance(value, np.ndarray | list | tuple):
        if len(value) == 0:
            return ""
        value = value[0]
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


class TfdsReader:
    """Random access to one split of a prepared TFDS data set."""

    def __init__(
        self,
        name: str,
        split: str,
        *,
        data_dir: str | None = None,
        builder_dir: str | None = None,
        image_key: str = "image",
        label_key: str | None = "label",
        caption_key: str | None = None,
        key_field: str | None = "file_name",
    ):
        import tensorflow_datasets as tfds  # heavy import, only for this source

        if builder_dir is not None:
            self.data = tfds.builder_from_directory(builder_dir).as_data_source(split=split)
        else:
            # download=False: a data set that is not prepared fails here, never downloads.
            self.data = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
        self.name, self.split = name, split
        self.image_key, self.label_key, self.caption_key = image_key, label_key, caption_key
        self.key_field = key_field
        features = self.data.dataset_info.features
        self.class_names: tuple[str, ...] = ()
        if label_key and label_key in features and hasattr(features[label_key], "names"):
            self.class_names = tuple(features[label_key].names)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"TfdsReader({self.name!r}, split={self.split!r}, {len(self)} examples)"

    def key(self, index: int) -> str:
        return f"{self.name}/{self.split}[{index}]"

    def read(self, index: int) -> Record:
        example = self.data[index]
        key = self.key(index)
        if self.key_field and self.key_field in example:
            key = f"{key} {_first_text(example[self.key_field])}"
        label = -1
        if self.label_key and self.label_key in example:
            label = int(np.asarray(example[self.label_key]).reshape(-1)[0])
        caption = _first_text(_lookup(example, self.caption_key)) if self.caption_key else ""
        image = _lookup(example, self.image_key)
        image = image if isinstance(image, bytes) else np.asarray(image)
        return Record(key=key, image=image, label=label, caption=caption)


def tfds_source(
    split: str,
    *,
    dataset: str,
    canvas_size: int,
    tfds_split: str | None = None,
    data_dir: str | None = None,
    builder_dir: str | None = None,
    image_key: str = "image",
    label_key: str | None = "label",
    caption_key: str | None = None,
    **robust_kwargs,
) -> RobustSource:
    """Registered as "tfds": source_kwargs = dict(dataset="imagenet2012", canvas_size=...,
    data_dir=...). `tfds_split` (e.g. "validation", "train[:90%]") overrides the split name the
    trainer asks for. robust_kwargs go to RobustSource.
    """
    reader = TfdsReader(
        dataset,
        tfds_split or split,
        data_dir=data_dir,
        builder_dir=builder_dir,
        image_key=image_key,
        label_key=label_key,
        caption_key=caption_key,
    )
    return RobustSource(
        reader, canvas_size=canvas_size, class_names=reader.class_names, **robust_kwargs
    )
