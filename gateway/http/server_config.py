"""The uvicorn configuration of a listener: the same in `serve` (scoring and admin listeners)
and in each data-plane worker of `serve --workers N`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import uvicorn

from gateway.http.server_protocol import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_HEADER_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_SEND_TIMEOUT_S,
    hardened_protocol,
)


@dataclass(frozen=True, slots=True)
class ListenerLimits:
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    send_timeout_s: float = DEFAULT_SEND_TIMEOUT_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    graceful_timeout_s: float = 30.0


def server_config(app: Any, limits: ListenerLimits, listener: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        loop="uvloop",
        http=hardened_protocol(limits.header_timeout_s, max_connections=limits.max_connections,
                               body_timeout_s=limits.body_timeout_s,
                               send_timeout_s=limits.send_timeout_s, listener=listener),
        lifespan="on",
        access_log=False,
        log_config=None,
        log_level="warning",
        timeout_graceful_shutdown=int(limits.graceful_timeout_s),
        timeout_keep_alive=30,
        server_header=False,
        proxy_headers=False,
        date_header=False,
        limit_concurrency=None,
        h11_max_incomplete_event_size=64 * 1024,
    )
