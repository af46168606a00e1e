"""What a run checks and tidies in its workdir before it reads anything.

`check_layout` (every process, before the first file is opened): each entry the trainer uses is
of the kind it must be, e.g. `checkpoints` a directory, so that a misplaced file stops the run
at start with one message instead of failing saves later. `remove_unfinished_saves` (process 0,
holding the workdir lock): the temporary folders of saves that a killed run left behind
(`<step>.orbax-checkpoint-tmp*`, never a complete checkpoint) are removed with a message.
"""

from __future__ import annotations

from absl import logging

from avrl_jax import paths
from avrl_jax.errors import UserError

DIRECTORIES = ("checkpoints", "logs", "tensorboard")
FILES = ("config.json", "metrics.jsonl", "trainer.lock")
UNFINISHED_SAVE_MARK = ".orbax-checkpoint-tmp"


class WorkdirLayoutError(UserError):
    """An entry of the workdir is not of the kind the trainer keeps there."""


def check_layout(workdir: str) -> None:
    """Raises WorkdirLayoutError naming the first entry of the wrong kind, and the fix."""
    if paths.is_url(workdir) and not paths.is_bucket(workdir):
        raise WorkdirLayoutError(
            f"--workdir {workdir}: a URL workdir must be gs://BUCKET/PATH (a Google Cloud "
            "Storage bucket); for other storage, mount it and pass the mounted path"
        )
    if paths.isfile(workdir):
        raise WorkdirLayoutError(f"--workdir {workdir} is a file; pass a directory")
    wrong = [
        (name, "a directory") for name in DIRECTORIES if paths.isfile(paths.join(workdir, name))
    ] + [(name, "a file") for name in FILES if paths.isdir(paths.join(workdir, name))]
    if wrong:
        name, kind = wrong[0]
        raise WorkdirLayoutError(
            f"{paths.join(workdir, name)} must be {kind} (the trainer keeps its {name} there); "
            "move it out of the workdir, or pass another --workdir"
        )


def remove_unfinished_saves(checkpoint_dir: str) -> list[str]:
    """Removes the temporary folders of unfinished saves in `checkpoint_dir`; returns them."""
    if not paths.isdir(checkpoint_dir):
        return []
    removed = [
        paths.join(checkpoint_dir, name)
        for name in paths.listdir(checkpoint_dir)
        if UNFINISHED_SAVE_MARK in name
    ]
    for path in removed:
        paths.remove_tree(path)
    if removed:
        logging.warning(
            "Removed %d unfinished checkpoint save(s) left by a run stopped while saving "
            "(never a complete checkpoint): %s",
            len(removed),
            ", ".join(removed),
        )
    return removed
