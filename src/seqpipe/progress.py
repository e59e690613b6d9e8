"""Progress of long steps (downloads, feature extraction): a tqdm bar on a terminal, and in a log file (a cluster or
Snakemake job, stderr redirected) one line every few seconds with the count, rate and ETA, formatted by tqdm."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from tqdm import tqdm

log = logging.getLogger("seqpipe.progress")
LOG_EVERY_S = 5.0


class LogProgress:
    """tqdm's `update`/`close` API, written as log lines at most every `every_s` seconds (and once at the end)."""

    def __init__(self, total: float | None, desc: str, unit: str = "it", unit_scale: bool = False, initial: float = 0,
                 every_s: float = LOG_EVERY_S, logger: logging.Logger = log):
        self.total, self.desc, self.unit, self.unit_scale = total, desc, unit, unit_scale
        self.n = self.start_n = initial
        self.every_s, self.logger = every_s, logger
        self.started = self.last = time.monotonic()

    def line(self) -> str:
        """The current state as tqdm formats it: count of total, percentage, elapsed<ETA, rate."""
        elapsed = time.monotonic() - self.started
        rate = (self.n - self.start_n) / elapsed if elapsed > 0 else None
        return tqdm.format_meter(self.n, self.total, elapsed, prefix=self.desc, unit=self.unit, unit_scale=self.unit_scale,
                                 rate=rate, ncols=0, unit_divisor=1024 if self.unit == "B" else 1000)

    def update(self, n: float = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            self.logger.info("%s", self.line())

    def set_postfix(self, **_: object) -> None:
        """Accepted for tqdm compatibility; the log line carries count, rate and ETA only."""

    def close(self) -> None:
        self.logger.info("%s", self.line())

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(total: float | None, desc: str, unit: str = "it", unit_scale: bool = False, initial: float = 0,
             stream: TextIO | None = None, every_s: float = LOG_EVERY_S) -> tqdm | LogProgress:
    """A progress reporter: a tqdm bar when `stream` (default stderr) is a terminal, else periodic log lines."""
    stream = stream or sys.stderr
    if stream.isatty():
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, unit_scale=unit_scale, file=stream,
                    unit_divisor=1024 if unit == "B" else 1000, dynamic_ncols=True)
    return LogProgress(total, desc, unit, unit_scale, initial, every_s)
