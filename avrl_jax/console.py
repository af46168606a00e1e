"""What the programs print: the project's own log lines on the console, everything in a file.

Orbax, Grain and absl log hundreds of INFO lines per run (checkpoint manager threads, handler
registries). By default the console (absl's stderr handler) shows only this project's INFO
lines and every library's WARNING and above; the full INFO log goes to WORKDIR/logs/. absl's
standard `--verbosity` flag, given explicitly, shows everything at that level on the console
too (`--verbosity=0`: all INFO lines, `--verbosity=-1`: warnings only).
"""

from __future__ import annotations

import logging as std_logging
import os
import sys
import warnings

from absl import flags, logging

from avrl_jax import paths

LOG_DIR = "logs"
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_ORBAX_DIR = os.sep + os.path.join("orbax", "checkpoint") + os.sep


class OwnInfoFilter(std_logging.Filter):
    """Passes WARNING and above from anywhere, and lower levels only from this package. Not
    on the console either: Orbax's warnings that a read-only manager is read-only, Orbax's
    errors and what a failed asynchronous save leaves in asyncio's log (tracebacks of every
    thread and pending write; the checkpointer reports the failure in one line, and
    everything stays in the log file)."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        if _ORBAX_DIR in record.pathname and record.levelno < std_logging.CRITICAL:
            # A read-only manager (probes, export) says so in three warnings: not news.
            if "read only" in record.getMessage().replace("_", " ").lower():
                return False
            return record.levelno == std_logging.WARNING
        if record.name == "asyncio" and "exception was never retrieved" in record.getMessage():
            return False
        if record.levelno >= std_logging.WARNING:
            return True
        return os.path.abspath(record.pathname).startswith(_PACKAGE_DIR)


def _is_late_async_callback(error: BaseException) -> bool:
    """TensorStore completing a write after Orbax closed that save's event loop (what a failed
    save leaves behind, once per pending write): printed through sys.excepthook by the C++
    side (as an unraisable exception). The save's failure itself is reported by the
    checkpointer."""
    if not (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"):
        return False
    frames = []
    tb = error.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    return "call_soon_threadsafe" in frames


def _quiet_unraisablehook(unraisable, _default=sys.unraisablehook):
    if _is_late_async_callback(unraisable.exc_value):
        return
    _default(unraisable)


class LogFileHandler(std_logging.FileHandler):
    """The log file, which a full disk (or a file-size limit) must not turn into a console
    flood: the first failed write says so in one line on stderr and the file takes no more
    lines (the standard handler prints a traceback for every record it cannot write). Once
    the program's final message is on its way (`final_message_follows`), a failure is silent:
    library threads still logging at exit must not print a line after it."""

    failed = False
    silent = False  # class-wide: set once, for every log file of the process

    def emit(self, record: std_logging.LogRecord) -> None:
        if not self.failed:
            super().emit(record)

    def handleError(self, record: std_logging.LogRecord) -> None:  # noqa: N802 (stdlib's name)
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handleError(record)
            return
        self.failed = True
        if LogFileHandler.silent:
            return
        sys.stderr.write(
            f"warning: the log file {self.baseFilename} could not be written "
            f"({error.strerror or error}); it takes no more lines in this run\n"
        )


def final_message_follows() -> None:
    """The program is about to print its last line (its error, or why it stopped): a log file
    that fails from now on takes no more lines without saying so, so that line stays the last
    one on the console."""
    LogFileHandler.silent = True


def log_file(workdir: str, program: str, process_index: int = 0) -> str:
    """WORKDIR/logs/<program>.log (process 0) or <program>.process<i>.log."""
    name = program if process_index == 0 else f"{program}.process{process_index}"
    return os.path.join(workdir, LOG_DIR, f"{name}.log")


def quiet_console() -> None:
    """The console filter (unless --verbosity was given). Call first in `app.run`'s main
    (absl's handler exists then), before any JAX call: JAX logs its backend search at INFO."""
    if flags.FLAGS["verbosity"].present:
        return
    sys.unraisablehook = _quiet_unraisablehook
    warnings.filterwarnings("ignore", message="coroutine .* was never awaited")
    logging.set_verbosity(logging.INFO)
    handler = logging.get_absl_handler()
    if not any(isinstance(f, OwnInfoFilter) for f in handler.filters):
        handler.addFilter(OwnInfoFilter())


def log_to_file(workdir: str, program: str) -> str | None:
    """Every log line (INFO and above, unless --verbosity says less) also goes to
    WORKDIR/logs/<program>.log; returns that path. A bucket workdir (gs://...) gets no log
    file (an object cannot be appended to): None; its console is the log (`--verbosity=0` for
    every INFO line). Call after jax.distributed.initialize."""
    if paths.is_url(workdir):
        return None
    import jax

    path = log_file(workdir, program, jax.process_index())
    os.makedirs(os.path.dirname(path), exist_ok=True)
    file_handler = LogFileHandler(path)
    file_handler.setLevel(std_logging.INFO)
    file_handler.setFormatter(logging.PythonFormatter())
    std_logging.getLogger().addHandler(file_handler)  # the root: absl and stdlib loggers
    return path
