"""What run() returned or raised, as the answer azmlinfsrv would give (computed in the run()
thread, so the event loop only writes bytes).

- a value → 200, `json.dumps(value)` (None → `{}`);
- an AMLResponse (ours, or Microsoft's / any werkzeug Response) → its status, headers and body,
  with `x-ms-run-function-failed: True` for a 5xx;
- an exception → 500 and `x-ms-run-function-failed: True`, except a client's mistake found
  inside the call (see `client_error`), which gets 400/415 and its message.
"""

from __future__ import annotations

import json
import logging
import os
import re
import types
from dataclasses import dataclass
from typing import Any

from scoring_servers.azureml.contrib_services.aml_request import RequestInputError
from scoring_servers.azureml.contrib_services.aml_response import AMLResponse

logger = logging.getLogger("scoring_servers.azureml")

JSON = b"application/json"
RUN_FAILED_MESSAGE = "An unexpected error occurred in scoring script. Check the logs for more info."
INTERNAL_ERROR_MESSAGE = "An unexpected internal error occurred. Check the logs for more info."
FAILED_HEADER = b"x-ms-run-function-failed"
JSON_HEADERS = ((b"content-type", JSON), (FAILED_HEADER, b"False"))
FAILED_HEADERS = ((b"content-type", JSON), (FAILED_HEADER, b"True"))
_BAD_HEADER_NAME = re.compile(rb'[\x00-\x20\x7f()<>@,;:\\[\]={}"/?]')
_BAD_HEADER_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_INFERENCE_SCHEMA_DIR = "inference_schema" + os.sep


@dataclass(frozen=True)
class Outcome:
    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...]  # content-type and x-ms-run-function-failed first
    exec_ms: float | None = None  # time in run(), when it returned


def error_body(message: str) -> bytes:
    return json.dumps({"message": message}).encode()


def error_outcome(status: int, message: str, run_failed: bool = False) -> Outcome:
    return Outcome(status, error_body(message), FAILED_HEADERS if run_failed else JSON_HEADERS)


def encode_result(result: Any) -> bytes:
    """`json.dumps` exactly as azureml-inference-server-http answers (None → `{}`).

    orjson is not used: it writes `[1,2]` where json.dumps writes `[1, 2]`, and clients may
    compare bytes.
    """
    if result is None:
        return b"{}"
    return json.dumps(result).encode()


def result_outcome(result: Any, exec_ms: float, request_id: str) -> Outcome:
    if isinstance(result, AMLResponse):
        return _response_outcome(result.status_code, result.headers, result.data, exec_ms)
    if _is_foreign_response(result):
        return _response_outcome(int(result.status_code), list(result.headers.items()),
                                 result.get_data(), exec_ms)
    try:
        return Outcome(200, encode_result(result), JSON_HEADERS, exec_ms)
    except (TypeError, ValueError) as exc:  # azmlinfsrv's answer to this, word for word
        logger.error("run() returned a value json.dumps cannot encode (request %s): %s",
                     request_id, exc)
        return error_outcome(500, INTERNAL_ERROR_MESSAGE)


def _is_foreign_response(result: Any) -> bool:
    """A Flask/werkzeug Response (Microsoft's AMLResponse is one)."""
    return (hasattr(result, "status_code") and hasattr(result, "get_data")
            and hasattr(result, "headers") and hasattr(result.headers, "items"))


def _response_outcome(status: int, headers: list[tuple[str, str]], body: bytes,
                      exec_ms: float) -> Outcome:
    if not 100 <= status <= 599:
        logger.error("run() returned an AMLResponse with the invalid status %r", status)
        return error_outcome(500, f"run() returned an invalid HTTP status {status}", True)
    encoded = []
    failed = status >= 500
    for name, value in headers:
        raw_name = str(name).encode("latin-1", "replace")
        raw_value = str(value).encode("latin-1", "replace")
        if not raw_name or _BAD_HEADER_NAME.search(raw_name) or _BAD_HEADER_VALUE.search(raw_value):
            logger.error("run() returned an AMLResponse with an invalid header %r: %r", name, value)
            return error_outcome(500, f"run() returned an invalid HTTP header {name!r}", True)
        lower = raw_name.lower()
        if lower in (b"content-length", b"transfer-encoding", b"connection"):
            continue  # the server frames the body itself
        if lower == FAILED_HEADER:
            raw_value = b"True" if failed else raw_value
        encoded.append((raw_name, raw_value))
    if failed and not any(name.lower() == FAILED_HEADER for name, _ in encoded):
        encoded.append((FAILED_HEADER, b"True"))
    return Outcome(status, bytes(body), tuple(encoded), exec_ms)


def exception_outcome(exc: Exception, run_code: types.CodeType | None,
                      request_id: str) -> Outcome:
    """500 for the script's failure; 400/415 for a client's mistake found inside the call."""
    client = client_error(exc, run_code)
    if client is not None:
        status, message = client
        logger.warning("run() refused the input of request %s: %s", request_id, message)
        return error_outcome(status, message)
    logger.error("run() raised an exception (request %s)", request_id, exc_info=exc)
    return error_outcome(500, RUN_FAILED_MESSAGE, True)


def client_error(exc: Exception, run_code: types.CodeType | None) -> tuple[int, str] | None:
    """A client's mistake, or None for the script's own failure:
    - the request object's JSON/key errors (werkzeug's 400/415);
    - inference_schema's input conversion failing before the script's run() was entered
      (a value of the wrong type for a decorated parameter).
    azmlinfsrv answers both with 500; see docs/scoring-server.md."""
    if isinstance(exc, RequestInputError):
        return exc.status, exc.message
    if run_code is None:
        return None
    tb = exc.__traceback__
    in_schema = False
    while tb is not None:
        code = tb.tb_frame.f_code
        if code is run_code:
            return None  # the script's code ran: its failure
        if _INFERENCE_SCHEMA_DIR in code.co_filename:
            in_schema = True
        tb = tb.tb_next
    if in_schema:
        return 400, f"Invalid input for run(): {type(exc).__name__}: {exc}"
    return None
