"""Training reads what `python -m avrl_jax.ingest` wrote: ArrayRecord shards, random access.

The split's metadata file lists the shards and their record counts; a folder whose ingest has
not finished (no metadata) or whose shards disagree with it is refused with a clear error.
"""

from __future__ import annotations

import os

import grain

from avrl_jax.data import record_format
from avrl_jax.data.records import Record
from avrl_jax.data.robust_source import RobustSource


class ArrayRecordReader:
    """Random access to the records of one ingested split (shard order, then write order)."""

    def __init__(self, folder: str, split: str):
        self.folder, self.split = folder, split
        self.metadata = record_format.read_metadata(folder, split)
        shards = self.metadata["shards"]
        paths = [os.path.join(folder, s["file"]) for s in shards]
        missing = [p for p in paths if not os.path.exists(p)]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} shards listed in the metadata are missing: {missing[:3]}"
            )
        self.data = grain.sources.ArrayRecordDataSource(paths)
        expected = sum(s["num_records"] for s in shards)
        if len(self.data) != expected:
            raise ValueError(
                f"{folder}: shards hold {len(self.data)} records, metadata says {expected}; "
                "re-run the ingest to repair"
            )
        self.class_names = tuple(self.metadata.get("class_names", ()))

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"ArrayRecordReader({self.folder!r}, split={self.split!r}, {len(self)} records)"

    def key(self, index: int) -> str:
        return f"{self.split}[{index}]"

    def read(self, index: int) -> Record:
        return record_format.deserialize(self.data[index])


def array_record_source(
    split: str, *, path: str, canvas_size: int, **robust_kwargs
) -> RobustSource:
    """Registered as "array_record": source_kwargs = dict(path=INGEST_OUTPUT, canvas_size=...).

    robust_kwargs go to RobustSource. Ingest already skipped undecodable inputs, so bad
    records here mean damage after ingest; they are still counted, not fatal.
    """
    reader = ArrayRecordReader(path, split)
    return RobustSource(
        reader, canvas_size=canvas_size, class_names=reader.class_names, **robust_kwargs
    )
