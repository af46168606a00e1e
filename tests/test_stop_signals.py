"""The signal handler only records; the program stops where it checks (avrl_jax.stop_signals).
The end-to-end behaviour (a save on a signal, a clean exit during start-up) is in
test_checkpointing.py."""

import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from avrl_jax import stop_signals
from avrl_jax.stop_signals import StoppedBySignal, StopSignal


def wait_for(predicate, timeout=5.0):
    deadline = time.time() + timeout
    while not predicate() and time.time() < deadline:
        time.sleep(0.001)  # the handler runs between these bytecodes


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_inside_code_that_swallows_exceptions_is_not_lost(signum):
    """A handler that raised would raise here, inside the `except Exception` (as logging's own
    error handling and many libraries have), and the stop would be lost."""
    stop = StopSignal()
    try:
        try:
            os.kill(os.getpid(), signum)
            wait_for(lambda: stop.received)
        except Exception:
            pass
        assert stop.received and stop.name == signal.Signals(signum).name
        with pytest.raises(StoppedBySignal, match=f"stopped by {stop.name} during start-up"):
            stop.check_startup()
    finally:
        stop.restore()


def test_a_signal_during_a_log_write_is_not_lost():
    """The case that lost a stop: the signal arrives while a long record is being written."""
    logger = logging.getLogger("test_stop_signals")
    handler = logging.StreamHandler(open(os.devnull, "w"))
    logger.addHandler(handler)
    logger.propagate = False
    table = "\n".join(f"| row {i} | {'x' * 100} |" for i in range(300))
    stop = StopSignal()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.time() + 5
        while not stop.received and time.time() < deadline:
            logger.warning("table\n%s", table)
        assert stop.received
    finally:
        stop.restore()
        logger.removeHandler(handler)
        handler.stream.close()


def test_restore_and_uninstall_put_back_the_previous_handlers():
    before = {s: signal.getsignal(s) for s in stop_signals.SIGNALS}
    program = stop_signals.install()
    assert stop_signals.install() is program  # one per program
    assert all(signal.getsignal(s) == program._handle for s in stop_signals.SIGNALS)
    stop_signals.uninstall()
    assert {s: signal.getsignal(s) for s in stop_signals.SIGNALS} == before
    stop_signals.uninstall()  # a second call is harmless


def test_a_second_signal_ends_the_process_at_once():
    source = (
        "import os, signal, time\n"
        "from avrl_jax.stop_signals import StopSignal\n"
        "stop = StopSignal()\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "time.sleep(0.2)\n"
        "assert stop.received\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "time.sleep(5)\n"
        "print('still running')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == -signal.SIGTERM, result.stderr
    assert "still running" not in result.stdout
    assert "Received SIGTERM: stopping at the next safe point" in result.stderr
    assert "Second SIGTERM: exiting now" in result.stderr
