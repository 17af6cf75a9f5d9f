"""`ScoringApp` alone on a JSON routing snapshot, under the uvicorn settings `scoregate serve`
uses: the data plane without the control plane, for benchmarks that price the hot path.

    python benchmarks/common/snapshot_gateway.py snapshot.json --port-file F \\
        [--no-metrics] [--no-access-log] [--http serve|httptools]

JSON: {"version", "settings": {...GatewaySettings}, "endpoints": [{"name", "auth_mode", "keys",
"token_secret", "traffic": {name: pct}, "mirror": {name: pct}, "deployments": [{"name",
"instances": [{"id", "url"}], "request_timeout_s", "max_concurrent_requests_per_instance"}]}]}
(the format of the tests' runner, tests/support/snapshot_gateway.py, restated here because
benchmarks import nothing from tests/). The server is configured by control_plane/serve.py's
`_config`, so the benchmark prices what users run.
`--http httptools` swaps serve's hardened protocol (gateway/http/server_protocol.py) for uvicorn's
plain httptools one, to price the hardening.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path
from typing import Any

import orjson
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from control_plane.serve import ServeOptions, _config  # noqa: E402
from gateway.app import GatewayOptions, ScoringApp  # noqa: E402
from gateway.snapshot import (  # noqa: E402
    DeploymentRoute,
    EndpointRoute,
    GatewaySettings,
    InstanceRoute,
    RoutingSnapshot,
    SnapshotHolder,
    freeze,
)
from gateway.telemetry.access_log import configure_logging  # noqa: E402
from gateway.telemetry.metrics import publish_config  # noqa: E402


def deployment_from(endpoint: str, data: dict[str, Any]) -> DeploymentRoute:
    return DeploymentRoute(
        name=data["name"], endpoint=endpoint,
        instances=tuple(InstanceRoute(**i) for i in data.get("instances", [])),
        request_timeout_s=data.get("request_timeout_s", 5.0),
        max_concurrent_requests_per_instance=data.get("max_concurrent_requests_per_instance", 1))


def endpoint_from(data: dict[str, Any]) -> EndpointRoute:
    name = data["name"]
    deployments = [deployment_from(name, d) for d in data.get("deployments", [])]
    mirror = data.get("mirror") or {}
    return EndpointRoute(
        name=name, auth_mode=data.get("auth_mode", "key"),
        keys=tuple(k.encode() for k in data.get("keys", [])),
        token_secret=data.get("token_secret", "").encode(),
        deployments=freeze({d.name: d for d in deployments}),
        traffic=tuple((k, v) for k, v in data.get("traffic", {}).items() if v > 0),
        mirror=next(iter(mirror.items())) if mirror else None)


def snapshot_from(data: dict[str, Any]) -> RoutingSnapshot:
    endpoints = [endpoint_from(e) for e in data.get("endpoints", [])]
    return RoutingSnapshot(version=data.get("version", 1),
                           endpoints=freeze({e.name: e for e in endpoints}),
                           settings=GatewaySettings(**data.get("settings", {})))


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
