"""The data plane's errors: `GatewayError` becomes one JSON `{"message": ...}` response;
`SettingsError` refuses gateway settings that cannot work, before anything is served.

Handlers raise `GatewayError`; the app turns it into a response in one place. Text that came
from a client (a deployment or endpoint name) goes through `printable` first, so a message
never echoes control characters back.
"""

from __future__ import annotations

import orjson

JSON_HEADERS = ((b"content-type", b"application/json"),)


class GatewayError(Exception):
    """A request the gateway answers itself, with `status` and a message a person can act on."""

    def __init__(self, status: int, message: str,
                 headers: tuple[tuple[bytes, bytes], ...] = (),
                 model_status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers
        self.model_status = model_status  # the model's own status, when it answered

    def body(self) -> bytes:
        return orjson.dumps({"message": self.message})

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        """A fresh list (the caller may append to it): JSON content type, then our own."""
        return [*JSON_HEADERS, *self.headers]


class SettingsError(ValueError):
    """Settings of the gateway that cannot work (e.g. `CompareSettings`); the control plane
    turns it into the error of the flag or file it read them from."""


def printable(text: str, limit: int = 64) -> str:
    """Client-supplied text made safe to quote: printable ASCII only, at most `limit` chars."""
    cleaned = "".join(ch if " " <= ch <= "~" else "?" for ch in text[:limit])
    return cleaned + ("..." if len(text) > limit else "")


def not_found(message: str) -> GatewayError:
    return GatewayError(404, message)


def unauthorized() -> GatewayError:
    return GatewayError(401, "missing, wrong or expired credentials: send "
                             "'Authorization: Bearer <key or token>' for this endpoint")
