"""SIGTERM and SIGINT: a run stops cleanly whenever it gets one.

The handler only records the signal; the program acts on it at points where stopping is safe.
(A handler that raises would raise wherever the main thread happens to be: inside a library's
`except Exception`, such as `logging`'s own error handling, the exception is swallowed and the
signal lost, and the run trains on as if none had come.)

- During start-up (config, data, model, restore: everything before the first step), the run
  checks between stages (`check_startup`) and raises `StoppedBySignal`; `avrl_jax.cli` prints
  one line and exits 0. No step has been trained or saved, so nothing is lost. A long stage
  (a compilation, a large restore) ends first.
- During training, the loop checks `received` between steps: the step reached is saved, and
  the run exits 0 (preemption, scancel, Ctrl-C alike).
- A second signal ends the process at once (the default action), for a user who will not wait;
  Orbax's temporary folders keep a killed save from looking complete.
- After training (e.g. `--probe`), Python's default handling is back.
"""

from __future__ import annotations

import os
import signal

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StoppedBySignal(Exception):
    """A signal that arrived before the first training step."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(
            f"stopped by {signal.Signals(signum).name} during start-up, before the first step; "
            "no step was trained or saved, run the same command again to start"
        )


class StopSignal:
    """Records the first SIGTERM/SIGINT (see the module); `restore()` puts back the handlers
    that were there before."""

    def __init__(self):
        self.signum: int | None = None
        self._previous = {signum: signal.signal(signum, self._handle) for signum in SIGNALS}

    @property
    def received(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.received else ""

    def _handle(self, signum, frame):
        # No logging here: the main thread may be inside a write to the same stream.
        del frame
        name = signal.Signals(signum).name
        if self.received:
            os.write(2, f"Second {name}: exiting now, without waiting for a save.\n".encode())
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signum = signum
        os.write(2, f"Received {name}: stopping at the next safe point.\n".encode())

    def check_startup(self) -> None:
        """Raises StoppedBySignal if a signal came (call between start-up stages)."""
        if self.received:
            raise StoppedBySignal(self.signum)

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


_program: StopSignal | None = None


def install() -> StopSignal:
    """The program's StopSignal, installed on the first call (the entry point's first line, so
    that a signal during imports and start-up is caught); later calls return the same one."""
    global _program
    if _program is None:
        _program = StopSignal()
    return _program


def uninstall() -> None:
    """Back to the handlers from before `install()` (called when training ends)."""
    global _program
    if _program is not None:
        _program.restore()
        _program = None
