"""The log file handler when the disk refuses a write: one line on stderr, not a flood."""

import errno
import logging

from avrl_jax import console


class RefusingStream:
    def write(self, text):
        raise OSError(errno.EFBIG, "File too large")

    def flush(self):
        raise OSError(errno.EFBIG, "File too large")


def test_a_log_file_that_cannot_be_written_says_so_once(tmp_path, capsys):
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
