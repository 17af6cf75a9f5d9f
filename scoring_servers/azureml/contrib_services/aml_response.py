"""`AMLResponse`: what a run() returns to set its own status, headers and body.

Built as azmlinfsrv's (a Flask Response) builds itself, so the bytes on the wire match:
- `json_str=True`: the body is `json.dumps(message)`, Content-Type application/json;
- `message=None`: the body is `{}`, Content-Type application/json;
- otherwise the body is the str (UTF-8) or bytes as given, Content-Type
  `text/html; charset=utf-8` unless `response_headers` names one;
- each `response_headers` value is split on "," into repeated headers;
- `x-ms-run-function-failed` is `False` (the server sets `True` for a 5xx).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_CONTENT_TYPE = "text/html; charset=utf-8"
JSON_CONTENT_TYPE = "application/json"


class AMLResponse:
    """The status, headers and body a run() answers with, passed through by the server."""

    def __init__(self, message: Any, status_code: int,
                 response_headers: Mapping[str, str] | None = None, json_str: bool = False,
                 run_function_failed: bool = False) -> None:
        given = dict(response_headers or {})
        content_type: str | None
        if message is None:
            body, content_type = b"{}", JSON_CONTENT_TYPE
        elif json_str:
            body, content_type = json.dumps(message).encode(), JSON_CONTENT_TYPE
        else:
            body = _body_bytes(message)
            content_type = None if "Content-Type" in given else DEFAULT_CONTENT_TYPE
        self.status_code = int(status_code)
        self.headers: list[tuple[str, str]] = []
        if content_type is not None:
            self.headers.append(("Content-Type", content_type))
        self.headers.append(("x-ms-run-function-failed", str(bool(run_function_failed))))
        for name, value in given.items():
            for part in str(value).split(","):
                self.headers.append((name, part.strip()))
        self.data = body

    def get_data(self, as_text: bool = False) -> Any:
        return self.data.decode("utf-8", "replace") if as_text else self.data

    @property
    def status(self) -> str:
        return str(self.status_code)

    def __repr__(self) -> str:
        return f"<AMLResponse {len(self.data)} bytes [{self.status_code}]>"


def _body_bytes(message: Any) -> bytes:
    """A werkzeug Response body: str or bytes, or an iterable of them."""
    if isinstance(message, (bytes, bytearray, memoryview)):
        return bytes(message)
    if isinstance(message, str):
        return message.encode("utf-8")
    if isinstance(message, Iterable):
        return b"".join(part.encode("utf-8") if isinstance(part, str) else bytes(part)
                        for part in message)
    raise TypeError(f"AMLResponse body must be str, bytes or an iterable of them, "
                    f"not {type(message).__name__} (pass json_str=True to send it as JSON)")
