"""Logging for the instance log: root logger to stdout, written in batches while serving.

Why batches: the example's two `logging.info` lines per `run()` were the largest cost we
control on the scikit-learn benchmark. Per record, the calling (run()) thread now only builds the
message (`getMessage()`, with the arguments as they are at the call) and appends it to a deque;
the event loop formats and writes everything pending every FLUSH_INTERVAL_S, in one batch and
one write syscall. The date part of a line is formatted once per second, not per record.
Before and after serving (and for more than MAX_PENDING records) records are written at once,
so an init() traceback is never held back. Lines stay in the order they were logged.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import sys
import time
from typing import TextIO

LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
FLUSH_INTERVAL_S = 0.05
BUFFER_BYTES = 1 << 16
MAX_PENDING = 4096  # beyond this the logging thread writes itself: bounded memory


class InstanceLogFormatter(logging.Formatter):
    """LOG_FORMAT, byte for byte what `logging.Formatter(LOG_FORMAT)` writes, but cheaper."""

    def __init__(self) -> None:
        super().__init__(LOG_FORMAT)
        self._second: tuple[int, str] = (-1, "")  # replaced whole: safe across threads

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached = self._second
        if cached[0] != second:
            stamp = time.strftime(self.default_time_format, self.converter(record.created))
            cached = (second, stamp)
            self._second = cached
        msec_format = self.default_msec_format
        return msec_format % (cached[1], record.msecs) if msec_format else cached[1]

    def line(self, record: logging.LogRecord, message: str) -> str:
        """`format(record)` with `message` as logged (its arguments may have changed since)."""
        text = (f"{self.formatTime(record)} {record.levelname} [{record.process}] "
                f"{record.name}: {message}")
        if record.exc_text:
            text = _joined(text, record.exc_text)
        if record.stack_info:
            text = _joined(text, self.formatStack(record.stack_info))
        return text


def _joined(text: str, more: str) -> str:
    return text + more if text.endswith("\n") else text + "\n" + more


class DeferredFlushHandler(logging.StreamHandler):  # type: ignore[type-arg]
    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.immediate = True
        self._pending: collections.deque[tuple[logging.LogRecord, str]] = collections.deque()

    def handle(self, record: logging.LogRecord) -> bool:
        if self.immediate or len(self._pending) >= MAX_PENDING:
            return bool(super().handle(record))  # emit() writes what is pending first
        if not self.filter(record):
            return False
        try:
            message = record.getMessage()
            if record.exc_info and not record.exc_text:  # while the traceback is at hand
                record.exc_text = self._formatter().formatException(record.exc_info)
        except Exception:  # a bad format string of the script: reported, never raised into run()
            self.handleError(record)
            return True
        self._pending.append((record, message))  # deque.append is atomic
        return True

    def emit(self, record: logging.LogRecord) -> None:
        if self._pending:
            self._write_pending()  # handle() holds the lock
        super().emit(record)

    def flush(self) -> None:
        if self.immediate:
            super().flush()

    def flush_pending(self) -> None:
        """Write and flush everything logged so far (on the event loop while serving)."""
        with self.lock:  # type: ignore[union-attr]
            self._write_pending()
            super().flush()

    def _write_pending(self) -> None:
        pending = self._pending
        if not pending:
            return
        formatter = self._formatter()
        lines = []
        while pending:
            record, message = pending.popleft()
            try:
                if isinstance(formatter, InstanceLogFormatter):
                    lines.append(formatter.line(record, message) + self.terminator)
                else:  # the script set its own formatter on our handler
                    lines.append(formatter.format(record) + self.terminator)
            except Exception:
                self.handleError(record)
        try:
            self.stream.write("".join(lines))
        except Exception:
            self.handleError(record)

    def _formatter(self) -> logging.Formatter:
        return self.formatter or logging.Formatter()

    async def flush_periodically(self) -> None:
        """Runs on the event loop while serving; flushes for good when cancelled."""
        self.immediate = False
        try:
            while True:
                await asyncio.sleep(FLUSH_INTERVAL_S)
                self.flush_pending()
        finally:
            self.immediate = True
            self.flush_pending()


def configure_logging(level: int) -> DeferredFlushHandler:
    """Root logging to stdout (its own buffered stream over fd 1), so the script's
    `logging.info` reaches the instance log."""
    sys.stdout.flush()
    stream = open(sys.stdout.fileno(), "w", buffering=BUFFER_BYTES, encoding="utf-8",
                  errors="backslashreplace", closefd=False)
    handler = DeferredFlushHandler(stream)
    handler.setFormatter(InstanceLogFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    return handler
