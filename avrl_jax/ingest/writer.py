"""Writing, verifying and resuming output shards; the split's metadata file.

Crash safety: a shard is written to `<shard>.tmp`, read back and checked, renamed into place,
and only then marked done by `<shard>.done.json` (written atomically too), which records its
record count, bad-record counts and SHA-256. A re-run skips every shard whose marker matches
the file on disk and rewrites the rest; since a task always yields the same records in the same
order, a rewritten shard is byte-identical to an uninterrupted run's.

Both runners (local processes, Apache Beam) call `write_shard` per task and `finalize` once.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
from collections.abc import Sequence

from array_record.python.array_record_module import ArrayRecordReader, ArrayRecordWriter

from avrl_jax.data import record_format
from avrl_jax.data.bad_records import MAX_EXAMPLES, check_bad_fraction
from avrl_jax.data.decode import REASONS
from avrl_jax.ingest.tasks import IngestSpec, ShardTask, task_records


class IngestVerificationError(RuntimeError):
    """A written shard does not read back as written."""


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_json_atomic(path: str, value: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def options_digest(spec: IngestSpec) -> str:
    """Identifies the options that decide a shard's bytes: a changed option redoes shards."""
    return hashlib.sha256(json.dumps(spec.options(), sort_keys=True).encode()).hexdigest()[:16]


def _valid_marker(shard_path: str, spec: IngestSpec) -> dict | None:
    """The done marker if it exists and matches the shard file on disk and the spec."""
    marker_path = shard_path + record_format.DONE_SUFFIX
    if not (os.path.exists(marker_path) and os.path.exists(shard_path)):
        return None
    try:
        with open(marker_path) as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return None
    if marker.get("options") != options_digest(spec):
        return None
    if marker.get("sha256") != file_sha256(shard_path):
        return None
    return marker


def verify_shard(path: str, keys: Sequence[str]) -> None:
    """Reads every record of a shard back and checks it parses and has the expected key."""
    reader = ArrayRecordReader(path)
    try:
        if reader.num_records() != len(keys):
            raise IngestVerificationError(
                f"{path}: {reader.num_records()} records read back, {len(keys)} written"
            )
        for i, data in enumerate(reader.read_all()):
            got = record_format.deserialize(data).key
            if got != keys[i]:
                raise IngestVerificationError(f"{path}: record {i} is {got!r}, wrote {keys[i]!r}")
    finally:
        reader.close()


def write_shard(spec: IngestSpec, task: ShardTask) -> dict:
    """Writes (or, if already done, skips) one output shard. Returns its done marker:
    {"file", "index", "num_records", "num_bad", "bad_counts", "bad_examples", "sha256",
    "options", "skipped"} ("skipped" is True when an earlier run had finished it)."""
    os.makedirs(spec.output, exist_ok=True)
    name = record_format.shard_name(spec.split, task.index, task.count)
    path = os.path.join(spec.output, name)
    marker = _valid_marker(path, spec)
    if marker is not None:
        return {**marker, "skipped": True}

    tmp = f"{path}.tmp"
    keys: list[str] = []
    bad_counts: collections.Counter[str] = collections.Counter()
    bad_examples: list[str] = []
    writer = ArrayRecordWriter(tmp, record_format.WRITER_OPTIONS)
    try:
        for key, item in task_records(spec, task):
            if isinstance(item, Exception):
                bad_counts[item.reason] += 1
                if len(bad_examples) < MAX_EXAMPLES:
                    bad_examples.append(f"{key}: {item}")
                continue
            writer.write(record_format.serialize(item))
            keys.append(key)
    finally:
        writer.close()
    verify_shard(tmp, keys)
    os.replace(tmp, path)
    marker = {
        "file": name,
        "index": task.index,
        "num_records": len(keys),
        "num_bad": sum(bad_counts.values()),
        "bad_counts": dict(sorted(bad_counts.items())),
        "bad_examples": bad_examples,
        "sha256": file_sha256(path),
        "options": options_digest(spec),
    }
    _write_json_atomic(path + record_format.DONE_SUFFIX, marker)
    return {**marker, "skipped": False}


def check_results(spec: IngestSpec, results: Sequence[dict], final: bool = False) -> None:
    """Raises TooManyBadRecordsError if the shards so far exceed spec.max_bad_fraction
    (before the end, only once spec.min_records records have been seen)."""
    good = sum(r["num_records"] for r in results)
    bad = sum(r["num_bad"] for r in results)
    counts: collections.Counter[str] = collections.Counter()
    for r in results:
        counts.update(r["bad_counts"])
    examples = [e for r in sorted(results, key=lambda r: r["index"]) for e in r["bad_examples"]]
    check_bad_fraction(
        bad,
        good + bad,
        spec.max_bad_fraction,
        examples,
        min_records=0 if final else spec.min_records,
        counts=counts,
        limit_name="--max_bad_fraction",
    )


def finalize(spec: IngestSpec, results: Sequence[dict], class_names: Sequence[str]) -> dict:
    """Checks the bad fraction, then writes and returns `<split>.metadata.json`.

    The metadata depends only on the spec and the shards' contents (no times, no output path),
    so two runs over the same input, local or Beam, write the same file.
    """
    results = sorted(results, key=lambda r: r["index"])
    if [r["index"] for r in results] != list(range(len(results))):
        raise IngestVerificationError(
            f"missing shards: got indices {[r['index'] for r in results]}"
        )
    check_results(spec, results, final=True)
    counts: collections.Counter[str] = collections.Counter()
    for r in results:
        counts.update(r["bad_counts"])
    metadata = {
        "format_version": record_format.FORMAT_VERSION,
        "split": spec.split,
        "input": spec.input,
        "options": spec.options(),
        "class_names": list(class_names),
        "num_records": sum(r["num_records"] for r in results),
        "num_bad": sum(r["num_bad"] for r in results),
        "bad_counts": {k: counts[k] for k in REASONS[1:] if counts[k]},
        "bad_examples": [e for r in results for e in r["bad_examples"]][:MAX_EXAMPLES],
        "shards": [
            {k: r[k] for k in ("file", "num_records", "num_bad", "sha256")} for r in results
        ],
    }
    _write_json_atomic(os.path.join(spec.output, record_format.metadata_name(spec.split)), metadata)
    return metadata


def verify_output(folder: str, split: str = "train") -> dict:
    """Checks a finished ingest: every listed shard exists, matches its SHA-256 and record
    count, and every record parses. Returns the metadata; raises IngestVerificationError."""
    metadata = record_format.read_metadata(folder, split)
    for shard in metadata["shards"]:
        path = os.path.join(folder, shard["file"])
        if not os.path.exists(path) or file_sha256(path) != shard["sha256"]:
            raise IngestVerificationError(f"{path}: missing or changed since ingest")
        reader = ArrayRecordReader(path)
        try:
            if reader.num_records() != shard["num_records"]:
                raise IngestVerificationError(f"{path}: record count differs from the metadata")
            for data in reader.read_all():
                record_format.deserialize(data)
        finally:
            reader.close()
    return metadata
