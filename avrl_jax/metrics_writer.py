"""Where training metrics go: TensorBoard event files and `metrics.jsonl` in the workdir, and
optionally Weights & Biases (`--wandb` or `wandb.enabled`; off by default, never required).

Only the main process writes (every process computes); the writer of other processes is a no-op.
A W&B run's id is derived from the workdir, so a resumed run continues the same W&B run.
"""

import hashlib
import json
import logging
import math
import sys
import time

import numpy as np

from avrl_jax import paths
from avrl_jax.errors import UserError


def summary_writer(logdir: str):
    """A tensorboardX SummaryWriter on `logdir` (a local folder or gs://...): TensorBoard event
    files without TensorFlow.

    tensorboardX imports torch at import time whenever torch is installed, only to accept torch
    tensors; we hand it numpy arrays. Where torch is installed but not yet imported (the test
    extra installs it for the timm export tests; many ML environments have it), that import
    costs each run 3-7 s of start-up on this machine's CPUs, so it is kept out: while
    tensorboardX is first imported, `import torch` fails as if torch were absent, which
    tensorboardX handles. Anything that imports torch later gets it as usual.
    """
    hide_torch = "torch" not in sys.modules
    if hide_torch:
        sys.modules["torch"] = None  # makes `import torch` raise ImportError
    try:
        from tensorboardX import SummaryWriter
    finally:
        if hide_torch:
            del sys.modules["torch"]
    return SummaryWriter(logdir=logdir)


def wandb_run_id(workdir: str) -> str:
    """A stable W&B run id for a workdir (its absolute path, hashed)."""
    return hashlib.sha1(paths.absolute(workdir).encode()).hexdigest()[:16]


def start_wandb(workdir: str, settings, config: dict):
    """wandb.init for this workdir (`settings`: the config's `wandb` section)."""
    try:
        import wandb
    except ImportError:
        raise UserError(
            "wandb.enabled (--wandb) needs the wandb package: pip install wandb, or drop --wandb "
            "(TensorBoard and metrics.jsonl are always written)"
        ) from None
    return wandb.init(
        project=settings.project,
        name=settings.get("name") or paths.basename(paths.absolute(workdir)),
        id=wandb_run_id(workdir),
        resume="allow",
        dir=None if paths.is_url(workdir) else workdir,  # W&B's own files stay local
        mode=settings.mode,
        config=config,
    )


def _step_of(line: str) -> int | None:
    """The step of a metrics record, or None for a line that is not one (a record cut short
    when the machine went down mid-write)."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def drop_records_after(path: str, step: int) -> None:
    """Keeps one consistent history on resume: records past the restored step are dropped
    (they came from the interrupted run and will be written again), and so are lines that are
    not whole records (with a warning naming them). Atomic rewrite."""
    if not paths.exists(path):
        return
    text = paths.read_text(path)
    lines = [line + "\n" for line in text.splitlines() if line.strip()]
    steps = [_step_of(line) for line in lines]
    broken = [number for number, s in enumerate(steps, 1) if s is None]
    if broken:
        logging.warning("%s: dropping lines %s, which are not whole metric records", path, broken)
    kept = [line for line, s in zip(lines, steps, strict=True) if s is not None and s <= step]
    if len(kept) == len(lines) and text.endswith("\n"):
        return
    paths.write_atomic(path, "".join(kept))


class JsonlLog:
    """Appends lines to a file: a local file is appended to and flushed at every line; an
    object in a bucket (which cannot be appended to) is rewritten whole at every line, so it
    is always a prefix of the run's records, never a half-written one."""

    def __init__(self, path: str):
        self.path = path
        self._remote = paths.is_url(path)
        if self._remote:
            self._lines = [paths.read_text(path)] if paths.exists(path) else []
        else:
            self._file = open(path, "a")

    def write(self, line: str) -> None:
        if self._remote:
            self._lines.append(line)
            paths.write_atomic(self.path, "".join(self._lines))
        else:
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        if not self._remote:
            self._file.close()


class MetricWriter:
    def __init__(
        self,
        workdir: str,
        *,
        enabled: bool = True,
        resume_step: int = 0,
        wandb=None,
        config: dict | None = None,
    ):
        """`wandb`: the config's `wandb` section (used when its `enabled`); `config`: the run's
        config as a dict, recorded by W&B."""
        self.enabled = enabled
        self._tb = None
        self._jsonl = None
        self._wandb = None
        if enabled and wandb is not None and wandb.get("enabled"):
            self._wandb = start_wandb(workdir, wandb, config or {})
        if enabled:
            paths.makedirs(workdir)
            # A run of its own beside the probes' (tensorboard/probe_<task>), not their parent.
            # tensorboardX writes gs:// event files itself (through google-cloud-storage).
            self._tb = summary_writer(paths.join(workdir, "tensorboard", "train"))
            path = paths.join(workdir, "metrics.jsonl")
            drop_records_after(path, resume_step)
            self._jsonl = JsonlLog(path)

    def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        clean = {k: float(np.asarray(v)) for k, v in scalars.items()}
        for name, value in clean.items():
            if math.isfinite(value):  # empty value-accuracy bins are NaN: metrics.jsonl only
                self._tb.add_scalar(name, value, step)
        record = {"step": int(step), "time": time.time()}
        record.update({k: (v if math.isfinite(v) else str(v)) for k, v in clean.items()})
        self._jsonl.write(json.dumps(record, sort_keys=True) + "\n")
        self._tb.flush()
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in clean.items() if math.isfinite(v)}, step=int(step))

    def write_image(self, tag: str, image: np.ndarray, step: int) -> None:
        """A uint8 [H, W, 3] image at `step` (TensorBoard only)."""
        if self.enabled:
            self._tb.add_image(tag, np.asarray(image, np.uint8), step, dataformats="HWC")
            self._tb.flush()
        if self._wandb is not None:
            import wandb

            self._wandb.log({tag: wandb.Image(np.asarray(image, np.uint8))}, step=int(step))

    def write_text(self, tag: str, text: str) -> None:
        if self.enabled:
            self._tb.add_text(tag, text, 0)

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
