"""CORS as azmlinfsrv enables it (`AML_CORS_ORIGINS` / `--access_control_allow_origins`:
flask-cors on its routes with methods GET and POST and otherwise flask-cors' defaults).

- A request whose `Origin` matches an allowed origin (case-insensitively; an entry with regex
  characters is a regex, `*` any origin) gets `Access-Control-Allow-Origin: <that origin>`;
  one whose `Origin` matches none gets no CORS headers.
- A request without `Origin` gets `*` when `*` is allowed, else the first allowed origin.
- A preflight (`OPTIONS` with `Access-Control-Request-Method` GET or POST) also gets
  `Access-Control-Allow-Methods: GET, POST` and its requested headers, sorted, as
  `Access-Control-Allow-Headers`.
- `Vary: Origin` whenever the answer depends on the origin.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

METHODS = ("GET", "POST")
_REGEX_CHARS = frozenset("*\\]?$^[]()")

if TYPE_CHECKING:  # annotations only (Python 3.8 cannot subscript these at run time)
    RawHeaders = Sequence[tuple[bytes, bytes]]


class CorsPolicy:
    __slots__ = ("_origins", "_patterns", "_wildcard", "_vary")

    def __init__(self, origins: Sequence[str]) -> None:
        self._origins = [origin for origin in origins if origin]
        self._wildcard = "*" in self._origins
        self._patterns = [
            re.compile(".*" if origin == "*" else origin, re.IGNORECASE)
            if not _REGEX_CHARS.isdisjoint(origin) else origin.lower()
            for origin in self._origins]
        self._vary = len(self._origins) > 1 or any(
            isinstance(pattern, re.Pattern) for pattern in self._patterns)

    @classmethod
    def parse(cls, text: str | None) -> CorsPolicy | None:
        """`a.com, b.com` → a policy; None or blank → no CORS."""
        if not text or not text.strip():
            return None
        return cls([origin.strip() for origin in text.split(",")])

    def headers(self, method: str, request_headers: RawHeaders) -> list[tuple[bytes, bytes]]:
        origin = request_method = requested_headers = b""
        for name, value in request_headers:
            if name == b"origin":
                origin = value
            elif name == b"access-control-request-method":
                request_method = value
            elif name == b"access-control-request-headers":
                requested_headers = value
        allowed = self._allowed_origin(origin.decode("latin-1"))
        if allowed is None:
            return []
        headers = [(b"Access-Control-Allow-Origin", allowed.encode("latin-1"))]
        if method == "OPTIONS" and request_method.decode("latin-1").upper() in METHODS:
            asked = sorted(part.strip() for part in requested_headers.decode("latin-1").split(","))
            if any(asked):
                headers.append((b"Access-Control-Allow-Headers",
                                ", ".join(part for part in asked if part).encode("latin-1")))
            headers.append((b"Access-Control-Allow-Methods", ", ".join(METHODS).encode()))
        if allowed != "*" and self._vary:
            headers.append((b"Vary", b"Origin"))
        return headers

    def _allowed_origin(self, origin: str) -> str | None:
        if not origin:
            if self._wildcard:
                return "*"
            plain = sorted(self._origins)
            return plain[0] if plain else None
        for pattern in self._patterns:
            if isinstance(pattern, re.Pattern):
                if pattern.match(origin):
                    return origin
            elif pattern == origin.lower():
                return origin
        return None
