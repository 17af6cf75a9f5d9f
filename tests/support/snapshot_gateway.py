"""Run `ScoringApp` alone on a routing snapshot described in JSON (tests only; start it with
`tests.support.gateway.start_snapshot`).

    python -m tests.support.snapshot_gateway snapshot.json --port-file F [--no-metrics]
        [--no-access-log]

JSON: {"version", "settings": {...GatewaySettings}, "endpoints": [{"name", "auth_mode", "keys",
"token_secret", "traffic": {name: pct}, "mirror": {name: pct}, "deployments": [{"name",
"instances": [{"id", "url", "score_path"?}], "request_timeout_s",
"max_concurrent_requests_per_instance"}]}]}.
The bound port is written to --port-file once the socket listens.
"""

from __future__ import annotations

import argparse
import socket
from pathlib import Path
from typing import Any

import orjson
import uvicorn

from gateway.app import GatewayOptions, ScoringApp
from gateway.snapshot import (
    DeploymentRoute,
    EndpointRoute,
    GatewaySettings,
    InstanceRoute,
    RoutingSnapshot,
    SnapshotHolder,
    freeze,
)
from gateway.telemetry.access_log import configure_logging
from gateway.telemetry.metrics import publish_config


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
    parser.add_argument("--no-metrics", action="store_true")
    parser.add_argument("--no-access-log", action="store_true")
    parser.add_argument("--log-format", default="json")
    args = parser.parse_args()
    configure_logging(args.log_format)
    snapshot = snapshot_from(orjson.loads(Path(args.snapshot).read_bytes()))
    publish_config(snapshot)
    app = ScoringApp(SnapshotHolder(snapshot),
                     GatewayOptions(metrics=not args.no_metrics,
                                    access_log=not args.no_access_log))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    Path(args.port_file).write_text(str(sock.getsockname()[1]))
    config = uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="on",
                            access_log=False, server_header=False, log_level="warning",
                            proxy_headers=False, backlog=2048)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
