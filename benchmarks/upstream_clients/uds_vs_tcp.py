"""CPU per request of the gateway's upstream client to one backend over loopback TCP and over a
Unix socket (managed instances use Unix sockets since issue 10).

    python benchmarks/upstream_clients/uds_vs_tcp.py [--requests 20000] [--runs 3] [--concurrency 8]

One backend process (uvloop, raw protocol, a fixed 52-byte JSON answer to every request)
listens on both; the client is `gateway.http.client.HttpClient` in this process, `concurrency`
requests at a time over kept-alive connections. CPU is utime+stime: of this process
(getrusage) and of the backend (/proc), per request; transports alternate run by run. Medians.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import uvloop  # noqa: E402

from gateway.http.client import HttpClient  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
BODY = b'{"data": [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]]}' * 3
_JSON = b'{"predictions": [1, 2, 3], "model": "bench-backend"}'
ANSWER = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
          + str(len(_JSON)).encode() + b"\r\n\r\n" + _JSON)


class Answering(asyncio.Protocol):
    """Answers each request once its head and Content-Length body have arrived."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15:].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(self.buffer) < head_end + 4 + length:
                return
            self.buffer = self.buffer[head_end + 4 + length:]
            self.transport.write(ANSWER)  # type: ignore[attr-defined]


def backend(port_file: Path, socket_path: Path) -> None:
    async def serve() -> None:
        loop = asyncio.get_running_loop()
        tcp = await loop.create_server(Answering, "127.0.0.1", 0)
        await loop.create_unix_server(Answering, str(socket_path))
        port_file.write_text(str(tcp.sockets[0].getsockname()[1]))
        await asyncio.Event().wait()

    uvloop.run(serve())


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def load(client: HttpClient, url: str, requests: int, concurrency: int) -> None:
    left = iter(range(requests))

    async def worker() -> None:
        for _ in left:
            answer = await client.request(url, "POST", "/score",
                                          [("content-type", "application/json")], BODY, 10.0)
            if answer.status != 200:
                raise RuntimeError(f"{url}: {answer.status}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def measure(url: str, backend_pid: int, requests: int,
                  concurrency: int) -> tuple[float, float, float]:
    """(client µs/request, backend µs/request, requests/s)"""
    client = HttpClient()
    try:
        await load(client, url, 500, concurrency)  # warm-up: connections, caches
        mine, theirs, started = own_cpu(), cpu_of(backend_pid), time.perf_counter()
        await load(client, url, requests, concurrency)
        seconds = time.perf_counter() - started
        return ((own_cpu() - mine) / requests * 1e6, (cpu_of(backend_pid) - theirs) / requests
                * 1e6, requests / seconds)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sg-bench-"))
    port_file, socket_path = tmp / "port", tmp / "backend.sock"
    pid = os.fork()
    if pid == 0:  # the backend
        try:
            backend(port_file, socket_path)
        finally:
            os._exit(0)
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text() and socket_path.exists()):
            if time.monotonic() > deadline:
                raise RuntimeError("the backend did not start")
            time.sleep(0.05)
        targets = {"loopback TCP": f"http://127.0.0.1:{int(port_file.read_text())}",
                   "Unix socket": f"unix:{socket_path}"}
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in targets}
        for _ in range(args.runs):
            for name, url in targets.items():
                results[name].append(uvloop.run(measure(url, pid, args.requests,
                                                        args.concurrency)))
        print(f"{args.runs} runs x {args.requests} requests, {args.concurrency} at a time; "
              "medians")
        print(f"{'transport':14} {'client us/req':>13} {'backend us/req':>14} {'req/s':>8}")
        for name, done in results.items():
            client, server, rps = (statistics.median(r[i] for r in done) for i in range(3))
            print(f"{name:14} {client:13.1f} {server:14.1f} {rps:8.0f}")
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        for path in (port_file, socket_path):
            path.unlink(missing_ok=True)
        tmp.rmdir()


if __name__ == "__main__":
    socket.setdefaulttimeout(30)
    main()
