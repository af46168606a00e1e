"""Where training metrics go: TensorBoard event files and `metrics.jsonl` in the workdir.

Only the main process writes (every process computes); the writer of other processes is a no-op.
"""

import json
import logging
import math
import os
import time

import numpy as np


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
    if not os.path.exists(path):
        return
    with open(path) as f:
        lines = [line for line in f if line.strip()]
    steps = [_step_of(line) for line in lines]
    broken = [number for number, s in enumerate(steps, 1) if s is None]
    if broken:
        logging.warning("%s: dropping lines %s, which are not whole metric records", path, broken)
    kept = [line for line, s in zip(lines, steps, strict=True) if s is not None and s <= step]
    if len(kept) == len(lines):
        return
    with open(path + ".tmp", "w") as f:
        f.writelines(kept)
    os.replace(path + ".tmp", path)


class MetricWriter:
    def __init__(self, workdir: str, *, enabled: bool = True, resume_step: int = 0):
        self.enabled = enabled
        self._tb = None
        self._jsonl = None
        if enabled:
            from tensorboardX import SummaryWriter  # Writes TensorBoard events without TF.

            os.makedirs(workdir, exist_ok=True)
            # A run of its own beside the probes' (tensorboard/probe_<task>), not their parent.
            self._tb = SummaryWriter(logdir=os.path.join(workdir, "tensorboard", "train"))
            path = os.path.join(workdir, "metrics.jsonl")
            drop_records_after(path, resume_step)
            self._jsonl = open(path, "a")

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
        self._jsonl.flush()
        self._tb.flush()

    def write_text(self, tag: str, text: str) -> None:
        if self.enabled:
            self._tb.add_text(tag, text, 0)

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            self._tb.close()
