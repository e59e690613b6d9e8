"""Progress in logs: long steps write count, rate and ETA every few seconds when not on a terminal."""

import io
import logging

from tqdm import tqdm

from seqpipe.progress import LogProgress, progress


def test_log_lines_carry_count_rate_and_eta(caplog):
    caplog.set_level(logging.INFO, logger="seqpipe.progress")
    with progress(100, "items", stream=io.StringIO(), every_s=0.0) as bar:
        assert isinstance(bar, LogProgress)
        for _ in range(4):
            bar.update(10)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 5  # one per update (every_s=0) and the final one
    assert "items:" in lines[0] and "10/100" in lines[0] and "<" in lines[0] and "it/s" in lines[0]
    assert "40/100" in lines[-1]


def test_lines_are_rate_limited(caplog):
    caplog.set_level(logging.INFO, logger="seqpipe.progress")
    bar = LogProgress(10_000, "files", every_s=3600)
    for _ in range(10_000):
        bar.update()
    bar.close()
    assert len(caplog.records) == 1 and "10000/10000" in caplog.records[0].getMessage()


def test_bytes_are_scaled(caplog):
    caplog.set_level(logging.INFO, logger="seqpipe.progress")
    with progress(5 * 2**20, "x.zip", unit="B", unit_scale=True, stream=io.StringIO()) as bar:
        bar.update(2**20)
    assert "1.00M/5.00M" in caplog.records[-1].getMessage()


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_a_bar():
    stream = Tty()
    with progress(3, "x", stream=stream) as bar:
        assert isinstance(bar, tqdm)
        bar.update(3)
    assert "3/3" in stream.getvalue()
