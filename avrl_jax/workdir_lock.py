"""One trainer per workdir: a lock held for the run's whole life.

WORKDIR/trainer.lock is locked with flock (released by the kernel when the process ends, even
when it is killed) and holds who has it: host, pid and start time. A second trainer on the same
workdir is refused with that owner named. A lock file left by a trainer that ended without
removing its note (SIGKILL, a crash) is not locked any more: it is taken over, with a message
naming the previous holder. On a multi-host job only process 0 takes it: one lock for the job.
flock is reliable on local disks and most NFS setups; for a bucket mounted with FUSE it is not.
A bucket (`gs://...` workdir) has no locks at all: there nothing is held, and one job per
workdir is the scheduler's to keep (as with big_vision and MaxText on TPU pods).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time

from absl import logging

from avrl_jax import paths

LOCK_FILE = "trainer.lock"


class WorkdirBusyError(FileExistsError):
    """Another live trainer holds the workdir."""


def _owner() -> dict:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def _describe(note: str) -> str:
    try:
        owner = json.loads(note)
        return f"host {owner['host']}, pid {owner['pid']}, started {owner['started']}"
    except (ValueError, KeyError, TypeError):
        return note or "an unknown process"


@contextlib.contextmanager
def hold(workdir: str, enabled: bool = True):
    """Holds WORKDIR/trainer.lock for the `with` block; raises WorkdirBusyError if a live
    process holds it. `enabled=False` (processes other than 0) holds nothing."""
    if not enabled:
        yield
        return
    if paths.is_url(workdir):
        logging.info(
            "%s is a bucket: no lock is held (one job per workdir is yours to keep)", workdir
        )
        yield
        return
    path = os.path.join(workdir, LOCK_FILE)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            raise WorkdirBusyError(
                f"{workdir} is in use by another trainer ({_describe(f.read().strip())}): a "
                "second one would write the same checkpoints and metrics. Wait for it to end "
                "(or stop it), or train in another --workdir."
            ) from None
        f.seek(0)
        previous = f.read().strip()
        if previous:
            logging.warning(
                "Taking over %s: its previous holder (%s) ended without releasing it.",
                path,
                _describe(previous),
            )
        f.seek(0)
        f.truncate()
        f.write(json.dumps(_owner()) + "\n")
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()  # a clean end leaves no note: the next start takes no "stale" lock
            f.flush()
            fcntl.flock(f, fcntl.LOCK_UN)
