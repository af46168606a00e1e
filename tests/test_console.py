"""The log file handler when the disk refuses a write: one line on stderr, not a flood."""

import errno
import logging

from avrl_jax import console


class RefusingStream:
    def write(self, text):
        raise OSError(errno.EFBIG, "File too large")

    def flush(self):
        raise OSError(errno.EFBIG, "File too large")


def test_a_log_file_that_cannot_be_written_says_so_once(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(console.LogFileHandler, "silent", False)
    path = tmp_path / "train.log"
    handler = console.LogFileHandler(str(path))
    logger = logging.getLogger("test_console_refusing")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("first line, written")
        assert "first line, written" in path.read_text()
        handler.stream = RefusingStream()
        for i in range(5):
            logger.warning("line %d", i)
    finally:
        logger.removeHandler(handler)
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"warning: the log file {path} could not be written (File too large); "
        "it takes no more lines in this run"
    ]
    assert handler.failed


def test_after_the_final_message_a_failing_log_file_prints_nothing(tmp_path, capsys, monkeypatch):
    """Library threads that still log while the process exits must not print a line after the
    program's last one (its error): the failure is silent once that message is on its way."""
    monkeypatch.setattr(console.LogFileHandler, "silent", False)
    handler = console.LogFileHandler(str(tmp_path / "train.log"))
    logger = logging.getLogger("test_console_final")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        console.final_message_follows()
        handler.stream = RefusingStream()
        logger.warning("a late line from a library thread")
    finally:
        logger.removeHandler(handler)
    assert capsys.readouterr().err == ""
    assert handler.failed  # and the file takes no more lines
