"""`ScoringApp` on a JSON routing snapshot, under the uvicorn settings `scoregate serve` uses.

    python benchmarks/upstream_clients/serve_gateway.py snapshot.json --port-file F \\
        [--no-metrics] [--no-access-log] [--http serve|httptools]

Like tests/gateway/run_gateway.py (whose snapshot format it reads), but the server is
configured by control_plane/serve.py's `_config`, so the benchmark prices what users run.
`--http httptools` swaps serve's hardened protocol (gateway/http/server_protocol.py) for uvicorn's
plain httptools one, to price the hardening.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

import orjson
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from control_plane.serve import ServeOptions, _config  # noqa: E402
from gateway.app import GatewayOptions, ScoringApp  # noqa: E402
from gateway.snapshot import SnapshotHolder  # noqa: E402
from gateway.telemetry.access_log import configure_logging  # noqa: E402
from gateway.telemetry.metrics import publish_config  # noqa: E402
from tests.gateway.run_gateway import snapshot_from  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("snapshot")
    parser.add_argument("--port-file", required=True)
    for flag in ("--no-metrics", "--no-access-log"):
        parser.add_argument(flag, action="store_true")
    parser.add_argument("--http", choices=("serve", "httptools"), default="serve")
    args = parser.parse_args()
    configure_logging("json")
    snapshot = snapshot_from(orjson.loads(Path(args.snapshot).read_bytes()))
    publish_config(snapshot)
    app = ScoringApp(SnapshotHolder(snapshot),
                     GatewayOptions(metrics=not args.no_metrics,
                                    access_log=not args.no_access_log))
    config = _config(app, ServeOptions(), 30.0)
    if args.http == "httptools":
        config.http = "httptools"
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    Path(args.port_file).write_text(str(sock.getsockname()[1]))
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
