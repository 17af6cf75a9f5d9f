"""The instance log's handler: same lines as logging.Formatter, none lost, in order, arguments
as they were at the call, even when formatting is deferred to the event loop."""

from __future__ import annotations

import io
import logging
import sys
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scoring_servers.azureml.logs import (
    LOG_FORMAT,
    MAX_PENDING,
    DeferredFlushHandler,
    InstanceLogFormatter,
)


def _record(message: str, args: tuple[object, ...] = (), level: int = logging.INFO,
            created: float | None = None, exc: bool = False, stack: bool = False,
            ) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    record = logging.LogRecord("some.logger", level, __file__, 1, message, args, exc_info,
                               sinfo="Stack (most recent call last):\n  frame" if stack else None)
    if created is not None:
        record.created = created
        record.msecs = int((created - int(created)) * 1000) + 0.0
    return record


@given(st.text(), st.floats(min_value=0, max_value=4e9), st.booleans(), st.booleans(),
       st.sampled_from([logging.DEBUG, logging.INFO, logging.ERROR]))
def test_lines_equal_logging_formatter(message: str, created: float, exc: bool, stack: bool,
                                       level: int) -> None:
    record = _record(message, (), level, created, exc, stack)
    record = _record(message, (), level, created, exc, stack)
    expected = logging.Formatter(LOG_FORMAT).format(record)
    ours = InstanceLogFormatter()
    if record.exc_info:
        record.exc_text = ours.formatException(record.exc_info)
    assert ours.line(record, record.getMessage()) == expected


def test_cached_second_follows_the_clock() -> None:
    formatter = InstanceLogFormatter()
    plain = logging.Formatter(LOG_FORMAT)
    for created in (1_700_000_000.25, 1_700_000_000.999, 1_700_000_001.0, 1_700_000_000.5):
        record = _record("tick", created=created)
        assert formatter.formatTime(record) == plain.formatTime(record)


def _deferred_handler() -> tuple[DeferredFlushHandler, io.StringIO, logging.Logger]:
    stream = io.StringIO()
    handler = DeferredFlushHandler(stream)
    handler.setFormatter(InstanceLogFormatter())
    handler.immediate = False
    logger = logging.getLogger(f"test-logs-{id(handler)}")
    logger.propagate = False
    logger.handlers = [handler]
    logger.setLevel(logging.DEBUG)
    return handler, stream, logger


def test_deferred_records_wait_for_the_flush_and_keep_call_time_arguments() -> None:
    handler, stream, logger = _deferred_handler()
    items = ["first"]
    logger.info("items %s", items)
    items.append("second")  # changed after the call: the line must not show it
    assert stream.getvalue() == ""
    handler.flush_pending()
    assert stream.getvalue().endswith(": items ['first']\n")


def test_lines_from_many_threads_are_all_written_in_each_threads_order() -> None:
    handler, stream, logger = _deferred_handler()
    per_thread = 500

    def log_lines(name: str) -> None:
        for index in range(per_thread):
            logger.info("%s %d", name, index)

    threads = [threading.Thread(target=log_lines, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(20):
        handler.flush_pending()  # concurrently with the writers, as the event loop does
    for thread in threads:
        thread.join()
    handler.flush_pending()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4 * per_thread
    for n in range(4):
        mine = [int(line.rsplit(" ", 1)[1]) for line in lines if f": t{n} " in line]
        assert mine == list(range(per_thread))


def test_an_immediate_record_comes_after_the_pending_ones() -> None:
    handler, stream, logger = _deferred_handler()
    logger.info("deferred")
    handler.immediate = True
    logger.error("at once")
    lines = stream.getvalue().splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == ["deferred", "at once"]


def test_exception_tracebacks_are_kept() -> None:
    handler, stream, logger = _deferred_handler()
    try:
        raise KeyError("the-missing-key")
    except KeyError:
        logger.exception("run() failed")
    handler.flush_pending()
    text = stream.getvalue()
    assert "run() failed\nTraceback (most recent call last):" in text
    assert "KeyError: 'the-missing-key'" in text


def test_a_bad_format_string_is_reported_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    handler, stream, logger = _deferred_handler()
    logger.info("two values %s %s", "only one")  # must not raise into the caller
    logger.info("next line")
    handler.flush_pending()
    assert stream.getvalue().endswith(": next line\n")
    assert "not enough arguments" in capsys.readouterr().err


def test_pending_records_are_bounded() -> None:
    handler, stream, logger = _deferred_handler()
    for index in range(MAX_PENDING + 10):
        logger.info("line %d", index)
    written = stream.getvalue().splitlines()
    assert len(written) >= 10  # written by the logging thread itself past the bound
    assert written[0].endswith(": line 0")
    handler.flush_pending()
    assert len(stream.getvalue().splitlines()) == MAX_PENDING + 10


def test_a_formatter_set_by_the_script_is_used() -> None:
    handler, stream, logger = _deferred_handler()
    handler.setFormatter(logging.Formatter("custom|%(levelname)s|%(message)s"))
    logger.warning("hello %s", "there")
    handler.flush_pending()
    assert stream.getvalue() == "custom|WARNING|hello there\n"
