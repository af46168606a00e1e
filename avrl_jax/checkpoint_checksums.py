"""Checksums of a checkpoint's files: written once a save is complete, verified before a restore.

`WORKDIR/checkpoints/<step>/checksums.json` maps every file of the step (relative path) to its
size and CRC-32. A file whose bytes changed (bit rot, a partial overwrite) or that is missing
makes the checkpoint damaged. CRC-32 (zlib) detects any burst of up to 32 flipped bits and
random damage with probability 1 - 2^-32, and runs at memory speed, so a save pays little for it
(see benchmarks/checkpoint_checksums.py). Checkpoints in a bucket get no manifest: the
trainer would read every file back to checksum it, and GCS itself checks each object's CRC32C
on upload and at rest.
"""

import json
import zlib

from avrl_jax import paths

MANIFEST = "checksums.json"
_CHUNK = 1 << 22


class ChecksumMismatch(Exception):
    """A checkpoint's files do not match its manifest: the message lists the files and why."""


def file_crc32(path: str) -> int:
    crc = 0
    with paths.open_file(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            crc = zlib.crc32(chunk, crc)
    return crc


def _files(step_dir: str) -> list[str]:
    return sorted(f for f in paths.walk_files(step_dir) if f != MANIFEST)


def write_manifest(step_dir: str) -> None:
    """Records size and CRC-32 of every file under `step_dir` (atomically: a temporary file
    renamed into place, so a killed write leaves no half manifest)."""
    entries = {
        relative: {
            "size": paths.getsize(paths.join(step_dir, relative)),
            "crc32": file_crc32(paths.join(step_dir, relative)),
        }
        for relative in _files(step_dir)
    }
    text = json.dumps({"algorithm": "crc32", "files": entries}, indent=1, sort_keys=True)
    paths.write_atomic(paths.join(step_dir, MANIFEST), text)


def has_manifest(step_dir: str) -> bool:
    return paths.isfile(paths.join(step_dir, MANIFEST))


def verify(step_dir: str) -> None:
    """Raises ChecksumMismatch naming every file of the manifest that is missing, has another
    size or another CRC-32 (or the manifest itself when it cannot be parsed)."""
    try:
        entries = json.loads(paths.read_text(paths.join(step_dir, MANIFEST)))["files"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ChecksumMismatch(f"{MANIFEST} cannot be read ({error})") from error
    problems = []
    for relative, expected in sorted(entries.items()):
        path = paths.join(step_dir, relative)
        if not paths.isfile(path):
            problems.append(f"{relative} is missing")
        elif (size := paths.getsize(path)) != expected["size"]:
            problems.append(f"{relative} has {size} bytes, {expected['size']} saved")
        elif file_crc32(path) != expected["crc32"]:
            problems.append(f"{relative} fails its checksum")
    if problems:
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise ChecksumMismatch("; ".join(problems[:3]) + more)
