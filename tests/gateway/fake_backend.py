"""A fake scoring server speaking real HTTP, for gateway tests and benchmarks.

    python tests/gateway/fake_backend.py --name blue --port-file F [--delay S] [--status N] [--echo]

POST /score answers JSON {"name", "mirror", "headers", "body_bytes"} (or the body itself with
--echo) after `--delay` seconds with `--status`; GET /stats gives the counts seen so far;
GET /swagger.json a tiny document; GET / answers Healthy.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from pathlib import Path

import orjson
from aiohttp import web


def build(name: str, delay: float, status: int, echo: bool) -> web.Application:
    counts = {"requests": 0, "mirror": 0}

    async def score(request: web.Request) -> web.Response:
        body = await request.read()
        counts["requests"] += 1
        mirrored = request.headers.get("x-scoregate-mirror") == "1"
        counts["mirror"] += mirrored
        if delay:
            await asyncio.sleep(delay)
        if echo:
            return web.Response(status=status, body=body,
                                content_type=request.content_type or "application/octet-stream")
        data = {"name": name, "mirror": mirrored, "headers": {str(k): v for k, v in request.headers.items()},
                "body_bytes": len(body)}
        return web.Response(status=status, body=orjson.dumps(data),
                            content_type="application/json", headers={"x-backend": name})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(counts)

    async def swagger(request: web.Request) -> web.Response:
        return web.json_response({"swagger": "2.0", "name": name,
                                  "query": request.query_string})

    async def healthy(request: web.Request) -> web.Response:
        return web.Response(text="Healthy")

    app = web.Application(client_max_size=1024**3)
    app.router.add_post("/score", score)
    app.router.add_get("/stats", stats)
    app.router.add_get("/swagger.json", swagger)
    app.router.add_get("/", healthy)
    return app


async def serve(args: argparse.Namespace) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    runner = web.AppRunner(build(args.name, args.delay, args.status, args.echo),
                           access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock, backlog=1024).start()
    Path(args.port_file).write_text(str(sock.getsockname()[1]))
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", default="backend")
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--status", type=int, default=200)
    parser.add_argument("--echo", action="store_true")
    args = parser.parse_args()
    try:
        import uvloop
        uvloop.run(serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
