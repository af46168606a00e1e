"""The byte layout of one ingested record, and the names of the files ingest writes.

A record (one ArrayRecord entry) is

  b"AVR1" | uint32 little-endian n | n bytes of JSON header | encoded image bytes

with the header `{"caption": str, "key": str, "label": int}` (keys sorted, compact separators,
so equal records serialize to equal bytes). No TensorFlow, no pickle: any language reads it.

An ingest output folder holds `<split>-<k>-of-<n>.array_record` shards (k, n 5 digits), a
`<shard>.done.json` marker per finished shard, and `<split>.metadata.json` once all its shards
are done (so train/ and validation/ runs can share a folder).
"""

from __future__ import annotations

import json
import os
import struct

from avrl_jax.data.records import Record

MAGIC = b"AVR1"
FORMAT_VERSION = 1
METADATA_SUFFIX = ".metadata.json"
DONE_SUFFIX = ".done.json"
SHARD_SUFFIX = ".array_record"
# One record per ArrayRecord chunk: the layout for random access (Grain reads single records).
WRITER_OPTIONS = "group_size:1"


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}{SHARD_SUFFIX}"


def serialize(record: Record) -> bytes:
    """Record with encoded image bytes -> record bytes (see the module docstring)."""
    if not isinstance(record.image, bytes):
        raise TypeError(f"record {record.key!r}: image must be encoded bytes")
    header = json.dumps(
        {"caption": record.caption, "key": record.key, "label": int(record.label)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode("utf-8")
    return MAGIC + struct.pack("<I", len(header)) + header + record.image


def deserialize(data: bytes) -> Record:
    """Record bytes -> Record (image as encoded bytes). Raises ValueError on a foreign layout."""
    data = bytes(data)
    if data[:4] != MAGIC:
        raise ValueError(f"not an avrl_jax record (starts {data[:4]!r}, expected {MAGIC!r})")
    (n,) = struct.unpack("<I", data[4:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    return Record(
        key=header["key"], image=data[8 + n :], label=header["label"], caption=header["caption"]
    )


def metadata_name(split: str) -> str:
    return f"{split}{METADATA_SUFFIX}"


def read_metadata(folder: str, split: str) -> dict:
    path = os.path.join(folder, metadata_name(split))
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: not an ingest output, or the ingest has not finished "
            "(re-run `python -m avrl_jax.ingest` with the same arguments to complete it)"
        )
    with open(path) as f:
        return json.load(f)
