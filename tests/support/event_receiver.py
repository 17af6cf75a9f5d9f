"""A real HTTP receiver of event deliveries (webhooks), on loopback, in a thread.

It records every POST (headers and raw body) it accepted, answers 503 to the first
`fail_first` POSTs, and with `hang` never answers at all, as a dead subscriber would: a POST
that hung is never answered nor recorded, even after `release()` turned the receiver healthy
for the POSTs that come next (so only a real retry or redelivery can reach it).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str = ""
    fail_first: int = 0
    hang: bool = False
    accepted: list[Delivery] = field(default_factory=list)
    attempts: int = 0  # every POST, refused, hanging or accepted
    lock: threading.Lock = field(default_factory=threading.Lock)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.hang = False
        self.released.set()

    def events(self) -> list[dict[str, Any]]:
        """The CloudEvents accepted, in arrival order."""
        with self.lock:
            return [d.json for d in self.accepted]

    def types(self) -> list[str]:
        return [e["type"] for e in self.events()]


@contextmanager
def running_receiver(fail_first: int = 0, hang: bool = False) -> Iterator[Receiver]:
    state = Receiver(fail_first=fail_first, hang=hang)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            with state.lock:
                state.attempts += 1
                refuse = state.attempts <= state.fail_first
            if state.hang:
                state.released.wait()
                return  # this one is never answered (its sender gave up or died meanwhile)
            if refuse:
                self.send_response(503)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            with state.lock:
                state.accepted.append(Delivery({k.lower(): v for k, v in self.headers.items()},
                                               body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        state.released.set()  # hanging handlers return without answering
        server.shutdown()
        server.server_close()
        thread.join(10)
