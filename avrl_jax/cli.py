"""How the programs start and fail: absl's `app.run`, with one clear message for a user's
mistake instead of a traceback.

Two kinds of mistakes are turned into one message each (exit status 2 for the command line, 1
for the run):
- the command line: a config file that does not load or rejects its `:variant`, an override
  of a field the config does not have (with ml_collections' "did you mean"), a bad flag;
- the run: the project's errors for bad input (config validation, checkpoints of another
  config, data that cannot be read, a workdir another trainer holds, a loss that became NaN,
  checkpoints that cannot be read or written), all `avrl_jax.errors.UserError`, ValueError,
  FileNotFoundError, FileExistsError or FloatingPointError with a message that names the
  problem and the fix. Their traceback still goes to the log file (WORKDIR/logs/,
  see avrl_jax.console), not to the console.
A SIGTERM or SIGINT before the first training step (see avrl_jax.stop_signals) is one line and
exit status 0. Anything else is a bug and keeps its traceback. After any failure the process
ends within EXIT_GRACE_SECONDS even when a library's threads would keep it alive.
"""

from __future__ import annotations

import logging as std_logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable

from absl import app, flags

from avrl_jax import console, paths
from avrl_jax.errors import UserError
from avrl_jax.stop_signals import StoppedBySignal

USER_ERRORS = (UserError, ValueError, FileNotFoundError, FileExistsError, FloatingPointError)


def _last_error_line(text: str) -> str:
    """The 'SomeError: message' line that ends a traceback embedded in `text` (or `text`)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for i in range(len(lines) - 1, -1, -1):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception): ", lines[i]):
            return " ".join(lines[i:])
    return " ".join(lines)


def command_line_error(error: BaseException, argv: list[str] = ()) -> str:
    """One line for an error raised while parsing the command line."""
    if isinstance(error, AttributeError):  # an override of a field the config does not have
        text = str(error)
        field = re.search(r"'\\?'?([A-Za-z_][\w]*)", text)
        field = field.group(1) if field else text
        flag = next(
            (
                a.split("=")[0]
                for a in argv
                if a.startswith("--") and a.split("=")[0].endswith("." + field)
            ),
            "--config override",
        )
        message = f"{flag}: the config has no field {field!r}"
        guess = re.search(r'Did you mean "([^"]+)"', text)
        return message + (f'; did you mean "{guess.group(1)}"?' if guess else "")
    return _last_error_line(str(error))


def _parse_flags(argv: list[str]) -> list[str]:
    try:
        return flags.FLAGS(argv)
    except (flags.Error, AttributeError, ValueError) as error:
        print(f"error: {command_line_error(error, argv)}", file=sys.stderr)
        print("Pass --helpshort or --helpfull to see help on flags.", file=sys.stderr)
        sys.exit(2)


def _log_traceback_to_file(error: BaseException) -> None:
    """The traceback, to the log file only (every root handler but absl's console one)."""
    from absl import logging

    console = logging.get_absl_handler()
    record = std_logging.LogRecord(
        "avrl_jax",
        std_logging.ERROR,
        __file__,
        0,
        "stopped by an error",
        None,
        (type(error), error, error.__traceback__),
    )
    for handler in std_logging.getLogger().handlers:
        if handler is not console:
            handler.handle(record)


# After a failure, how long the interpreter may wait at exit for library threads (e.g. Orbax's,
# blocked on a save that can never finish) before the process ends anyway.
EXIT_GRACE_SECONDS = 20.0


def _exit_within(seconds: float, code: int) -> None:
    """Ends the process with `code` if its normal shutdown (joining non-daemon threads, atexit)
    has not ended it `seconds` from now."""

    def watchdog() -> None:
        time.sleep(seconds)
        std_logging.shutdown()
        sys.stderr.flush()
        os._exit(code)

    threading.Thread(target=watchdog, name="exit-watchdog", daemon=True).start()


def run(main: Callable[[list[str]], None]) -> None:
    """app.run(main) with one-message failures for the user's mistakes (see the module).
    After any failure the process exits within EXIT_GRACE_SECONDS, never hangs."""

    def guarded(argv: list[str]) -> None:
        try:
            main(argv)
        except StoppedBySignal as stopped:
            console.final_message_follows()
            print(f"{stopped}", file=sys.stderr)
            _exit_within(EXIT_GRACE_SECONDS, 0)
            sys.exit(0)
        except USER_ERRORS as error:
            _log_traceback_to_file(error)
            console.final_message_follows()
            _exit_within(EXIT_GRACE_SECONDS, 1)
            sys.exit(f"error: {type(error).__name__}: {error}")
        except BaseException:
            _exit_within(EXIT_GRACE_SECONDS, 1)
            raise

    paths.configure_storage_emulator()  # environment only: before any storage is touched
    app.run(guarded, flags_parser=_parse_flags)
