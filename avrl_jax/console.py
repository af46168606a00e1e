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

from absl import flags, logging

LOG_DIR = "logs"
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class OwnInfoFilter(std_logging.Filter):
    """Passes WARNING and above from anywhere, and lower levels only from this package."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        if record.levelno >= std_logging.WARNING:
            return True
        return os.path.abspath(record.pathname).startswith(_PACKAGE_DIR)


def log_file(workdir: str, program: str, process_index: int = 0) -> str:
    """WORKDIR/logs/<program>.log (process 0) or <program>.process<i>.log."""
    name = program if process_index == 0 else f"{program}.process{process_index}"
    return os.path.join(workdir, LOG_DIR, f"{name}.log")


def quiet_console() -> None:
    """The console filter (unless --verbosity was given). Call first in `app.run`'s main
    (absl's handler exists then), before any JAX call: JAX logs its backend search at INFO."""
    if flags.FLAGS["verbosity"].present:
        return
    logging.set_verbosity(logging.INFO)
    handler = logging.get_absl_handler()
    if not any(isinstance(f, OwnInfoFilter) for f in handler.filters):
        handler.addFilter(OwnInfoFilter())


def log_to_file(workdir: str, program: str) -> str | None:
    """Every log line (INFO and above, unless --verbosity says less) also goes to
    WORKDIR/logs/<program>.log; returns that path (None for a URL workdir, which the program
    itself then refuses). Call after jax.distributed.initialize."""
    if "://" in workdir:
        return None
    import jax

    path = log_file(workdir, program, jax.process_index())
    os.makedirs(os.path.dirname(path), exist_ok=True)
    file_handler = std_logging.FileHandler(path)
    file_handler.setLevel(std_logging.INFO)
    file_handler.setFormatter(logging.PythonFormatter())
    std_logging.getLogger().addHandler(file_handler)  # the root: absl and stdlib loggers
    return path
