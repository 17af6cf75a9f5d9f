"""One data-plane worker of `serve --workers N`: `python -m gateway.fleet.worker --config JSON`.

It inherits three descriptors from the control plane: its scoring socket (bound with
SO_REUSEPORT to the shared port, not yet listening), its end of the control channel, and the
shared in-flight counts. Before it listens it waits for its first routing snapshot, so the
kernel never hands it a connection it could not route. Then, in order on the one channel:
each snapshot is applied whole (`SnapshotHolder.publish` refuses an older one) and only then
acknowledged, so once the control plane has this worker's acknowledgement of version V, no
request here is routed by anything older than V. It also answers the control plane's
requests for its metric samples and comparison reports, and asks it for the fleet's
`/metrics`.

SIGTERM: stop accepting, finish requests in flight (uvicorn's graceful shutdown). SIGINT is
ignored: the control plane (which gets the terminal's Ctrl-C too) stops the workers itself.
The worker also stops when the control channel closes (the control plane is gone).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import signal
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn
from prometheus_client import REGISTRY

from gateway.app import GatewayOptions, ScoringApp
from gateway.fleet.comparisons import report_to_wire
from gateway.fleet.config import WorkerConfig
from gateway.fleet.samples import export_families
from gateway.fleet.shared_counts import SharedAdmission, SharedCounts
from gateway.fleet.wire import Message, frame, read_message, snapshot_from_wire
from gateway.http.server_config import server_config
from gateway.snapshot import SnapshotHolder
from gateway.telemetry.access_log import configure_logging
from gateway.telemetry.instances import export_tallies

LISTEN_BACKLOG = 2048


class _Server(uvicorn.Server):
    """Graceful stop on SIGTERM only (see the module docstring)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop)
        try:
            yield
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    def _stop(self) -> None:
        self.should_exit = True


class _Channel:
    """This worker's end of the control channel."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Message]] = {}

    def send(self, message: dict[str, Any]) -> None:
        self.writer.write(frame(message))

    async def ask(self, message: dict[str, Any]) -> Message:
        ask_id = next(self._ids)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting[ask_id] = future
        try:
            self.send({**message, "id": ask_id})
            return await asyncio.wait_for(future, 10.0)
        finally:
            self._waiting.pop(ask_id, None)

    def answered(self, message: Message) -> None:
        future = self._waiting.get(int(message["id"]))
        if future is not None and not future.done():
            future.set_result(message)


class Worker:
    def __init__(self, config: WorkerConfig, channel: _Channel) -> None:
        self.config = config
        self.channel = channel
        self.holder = SnapshotHolder()
        self.counts = SharedCounts(config.counts_fd, config.workers)
        self.admission = SharedAdmission(self.counts, config.index)
        self.app = ScoringApp(self.holder,
                              GatewayOptions(metrics=config.metrics,
                                             metrics_route=config.metrics_route,
                                             access_log=config.access_log,
                                             compare=config.compare, worker=config.index),
                              admission=self.admission, metrics_source=self._fleet_metrics)

    def acknowledge(self) -> None:
        self.channel.send({"t": "ack", "version": self.holder.current.version})

    async def _fleet_metrics(self) -> tuple[bytes, str]:
        answer = await self.channel.ask({"t": "metrics?"})
        return str(answer["body"]).encode(), str(answer["content_type"])

    def handle(self, message: Message, ack: bool = True) -> None:
        kind = message["t"]
        if kind == "snapshot":
            self.admission.set_slots(message["slots"])
            snapshot = snapshot_from_wire(message["snapshot"])
            if snapshot.version > self.holder.current.version:
                self.holder.publish(snapshot)
            if ack:
                self.acknowledge()
        elif kind == "samples?":
            reports = [report_to_wire(self.app.comparisons(e, d)) for e, d in self.app.compared()]
            self.channel.send({"t": "samples", "id": message["id"],
                               "families": export_families(REGISTRY), "compare": reports,
                               "instances": export_tallies()})
        elif kind == "metrics":
            self.channel.answered(message)


async def run(config: WorkerConfig) -> int:
    configure_logging(config.log_format)
    control = socket.socket(fileno=config.control_fd)
    reader, writer = await asyncio.open_unix_connection(sock=control)
    channel = _Channel(reader, writer)
    worker = Worker(config, channel)
    while worker.holder.current.version == 0:  # the first snapshot, before listening
        try:
            worker.handle(await read_message(reader), ack=False)
        except asyncio.IncompleteReadError:
            return 0
    listener = socket.socket(fileno=config.listen_fd)
    listener.listen(LISTEN_BACKLOG)  # connections queue until the server below accepts them
    worker.acknowledge()  # listening: the control plane may count this worker as serving
    server = _Server(server_config(worker.app, config.limits, "scoring"))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    following = asyncio.create_task(_follow(worker, reader))
    await asyncio.wait([serving, following], return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True  # the control plane is gone: finish what is in flight
    await serving
    following.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await following
    return 0


async def _follow(worker: Worker, reader: asyncio.StreamReader) -> None:
    """Apply the control plane's messages in order until the channel closes."""
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        while True:
            worker.handle(await read_message(reader))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.fleet.worker")
    parser.add_argument("--config", required=True, help="WorkerConfig as JSON (from serve)")
    config = WorkerConfig.from_json(parser.parse_args(argv).config)
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run(config))


if __name__ == "__main__":
    raise SystemExit(main())
