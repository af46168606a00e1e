"""Files of a workdir on a local disk or in a bucket (`gs://bucket/run`), through one API.

Local paths go straight to `os`/`shutil` (what the trainer always did: atomic renames, fsync).
URLs (`gs://`, and any other scheme `etils.epath` knows) go through `etils.epath`, the path
library Orbax itself uses (for `gs://` it reads and writes with `gcsfs`). What differs on a
bucket, and how the trainer deals with it:
- no appends: `metrics.jsonl` is rewritten whole at each write (see metrics_writer);
- no locks: one trainer per workdir is not enforced (see workdir_lock);
- no renames: a file written whole is one upload (`write_atomic`), and moving a damaged
  checkpoint aside copies its objects, then deletes them (a partial move is harmless);
- no appendable log file: a bucket workdir has no `logs/` (see console);
- no checksum manifests: GCS checks each object's CRC32C itself (see checkpoint_checksums).

A GCS emulator (`STORAGE_EMULATOR_HOST=http://host:port`, which google-cloud-storage and gcsfs
read) is honoured by TensorStore, Orbax's array store, too: `configure_storage_emulator` maps
it to TensorStore's own settings.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from collections.abc import Iterator

EMULATOR_HOST = "STORAGE_EMULATOR_HOST"


def is_url(path: str) -> bool:
    """Whether `path` names remote storage (`gs://...`) rather than a local file."""
    return "://" in str(path)


def is_bucket(path: str) -> bool:
    """Whether `path` is gs://BUCKET[/PATH] (the only URL workdirs the trainer takes)."""
    return str(path).startswith("gs://") and len(str(path)) > len("gs://")


def _epath(path: str):
    from etils import epath  # only remote paths need it (and, through it, gcsfs)

    return epath.Path(path)


def join(path: str, *names: str) -> str:
    if is_url(path):
        return "/".join([str(path).rstrip("/"), *names])
    return os.path.join(path, *names)


def absolute(path: str) -> str:
    """A local path made absolute; a URL as it is."""
    return str(path) if is_url(path) else os.path.abspath(path)


def dirname(path: str) -> str:
    return str(path).rstrip("/").rsplit("/", 1)[0] if is_url(path) else os.path.dirname(path)


def basename(path: str) -> str:
    return str(path).rstrip("/").rsplit("/", 1)[-1] if is_url(path) else os.path.basename(path)


def exists(path: str) -> bool:
    return _epath(path).exists() if is_url(path) else os.path.exists(path)


def isdir(path: str) -> bool:
    return _epath(path).is_dir() if is_url(path) else os.path.isdir(path)


def isfile(path: str) -> bool:
    return _epath(path).is_file() if is_url(path) else os.path.isfile(path)


def makedirs(path: str) -> None:
    """Creates `path` and its parents (a no-op in a bucket, where folders are prefixes)."""
    if is_url(path):
        _epath(path).mkdir(parents=True, exist_ok=True)
    else:
        os.makedirs(path, exist_ok=True)


def listdir(path: str) -> list[str]:
    if is_url(path):
        return sorted(child.name for child in _epath(path).iterdir())
    return sorted(os.listdir(path))


def walk_files(root: str) -> Iterator[str]:
    """Paths relative to `root` of every file below it."""
    if not is_url(root):
        for folder, _, names in os.walk(root):
            for name in names:
                yield os.path.relpath(os.path.join(folder, name), root)
        return
    # gcsfs walks with bucket-relative names ("bucket/run/..."), without the scheme.
    top = str(root).split("://", 1)[1].rstrip("/")
    for folder, _, names in _epath(root).walk():
        folder = str(folder).split("://", 1)[-1].rstrip("/")
        for name in names:
            yield posixpath.relpath(posixpath.join(folder, name), top)


def open_file(path: str, mode: str = "r"):
    """`open` for a local path, epath's `open` for a URL (the object is written on close)."""
    return _epath(path).open(mode) if is_url(path) else open(path, mode)


def read_text(path: str) -> str:
    with open_file(path) as f:
        return f.read()


def getsize(path: str) -> int:
    return _epath(path).stat().length if is_url(path) else os.path.getsize(path)


def write_atomic(path: str, text: str) -> None:
    """Writes `path` whole or not at all: on a local disk a temporary file, synced and renamed
    into place; in a bucket the object itself (an upload becomes visible only when complete)."""
    if is_url(path):
        _epath(path).write_text(text)
        return
    temporary = path + ".tmp"
    with open(temporary, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def copyfile(source: str, target: str) -> None:
    if is_url(source) or is_url(target):
        _epath(source).copy(target, overwrite=True)
    else:
        shutil.copyfile(source, target)


def move_tree(source: str, target: str) -> None:
    """Moves a file or folder (in a bucket: copies every object, then deletes the source)."""
    if not is_url(source):
        shutil.move(source, target)
        return
    for relative in list(walk_files(source)):
        _epath(join(source, relative)).copy(join(target, relative), overwrite=True)
    _epath(source).rmtree()


def remove_tree(path: str) -> None:
    """Removes a file or a folder and everything in it."""
    if is_url(path):
        p = _epath(path)
        p.rmtree() if p.is_dir() else p.unlink()
    elif os.path.isdir(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def configure_storage_emulator() -> None:
    """With STORAGE_EMULATOR_HOST set, points TensorStore (Orbax's array writes) at the same
    emulator, with the fixed test token TensorStore accepts, and turns off gcsfs's bucket-type
    probe (a gRPC call emulators do not answer: it waits a minute per bucket). Call before the
    first remote read or write; settings already in the environment are kept."""
    host = os.environ.get(EMULATOR_HOST)
    if not host:
        return
    if "://" not in host:
        host = "http://" + host
    os.environ.setdefault("TENSORSTORE_GCS_HTTP_URL", host)
    os.environ.setdefault("GOOGLE_AUTH_TOKEN_FOR_TESTING", "emulator")
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
