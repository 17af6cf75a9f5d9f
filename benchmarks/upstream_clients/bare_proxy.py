"""A bare ASGI proxy with a chosen upstream client, to price the client alone.

    python benchmarks/upstream_clients/bare_proxy.py --client aiohttp|httpx|scoregate \
        --backend URL --port-file F

`scoregate` is gateway/http/client.py, the hot path's own client.
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvicorn

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


class BareProxy:
    def __init__(self, client: str, backend: str) -> None:
        self.client, self.backend, self.url = client, backend, backend + "/score"
        self.session: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await self.open()
                    await send({"type": "lifespan.startup.complete"})
                elif self.client == "scoregate":
                    self.session.close()
                else:
                    if self.client == "httpx":
                        await self.session.aclose()
                    else:
                        await self.session.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        status, data = await self.forward(body)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})

    async def open(self) -> None:
        if self.client == "httpx":
            import httpx
            self.session = httpx.AsyncClient(limits=httpx.Limits(max_connections=1000))
        elif self.client == "scoregate":
            from gateway.http.client import HttpClient
            self.session = HttpClient()
        else:
            import aiohttp
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))

    async def forward(self, body: bytes) -> tuple[int, bytes]:
        headers = {"content-type": "application/json"}
        if self.client == "httpx":
            response = await self.session.post(self.url, content=body, headers=headers)
            return response.status_code, response.content
        if self.client == "scoregate":
            answer = await self.session.request(self.backend, "POST", "/score",
                                                ((b"content-type", b"application/json"),),
                                                body, 5.0)
            return answer.status, answer.body
        async with self.session.post(self.url, data=body, headers=headers) as answer:
            return answer.status, await answer.read()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--client", choices=("aiohttp", "httpx", "scoregate"), required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    Path(args.port_file).write_text(str(sock.getsockname()[1]))
    config = uvicorn.Config(BareProxy(args.client, args.backend), loop="uvloop",
                            http="httptools", lifespan="on", access_log=False, proxy_headers=False,
                            log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
