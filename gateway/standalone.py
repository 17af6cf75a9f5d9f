"""The data plane alone: `ScoringApp` on a routing snapshot described in JSON, without the
control plane.

The tests' runner (`tests/support/snapshot_gateway.py`) and the benchmarks' one
(`benchmarks/common/snapshot_gateway.py`) both read this format; it lives here, next to the
snapshot types it builds, because benchmarks import nothing from tests/.

JSON: {"version", "settings": {...GatewaySettings}, "endpoints": [{"name", "auth_mode", "keys",
"token_secret", "traffic": {name: pct}, "mirror": {name: pct}, "deployments": [{"name",
"instances": [{"id", "url", "score_path"?}], "request_timeout_s",
"max_concurrent_requests_per_instance"}]}]}
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import orjson
import uvicorn

from gateway import snapshot as routes
from gateway.app import GatewayOptions, ScoringApp
from gateway.telemetry.metrics import publish_config

BACKLOG = 2048


def deployment_from(endpoint: str, data: dict[str, Any]) -> routes.DeploymentRoute:
    return routes.DeploymentRoute(
        name=data["name"], endpoint=endpoint,
        instances=tuple(routes.InstanceRoute(**i) for i in data.get("instances", [])),
        request_timeout_s=data.get("request_timeout_s", 5.0),
        max_concurrent_requests_per_instance=data.get("max_concurrent_requests_per_instance", 1))


def endpoint_from(data: dict[str, Any]) -> routes.EndpointRoute:
    name = data["name"]
    deployments = [deployment_from(name, d) for d in data.get("deployments", [])]
    mirror = data.get("mirror") or {}
    return routes.EndpointRoute(
        name=name, auth_mode=data.get("auth_mode", "key"),
        keys=tuple(k.encode() for k in data.get("keys", [])),
        token_secret=data.get("token_secret", "").encode(),
        deployments=routes.freeze({d.name: d for d in deployments}),
        traffic=tuple((k, v) for k, v in data.get("traffic", {}).items() if v > 0),
        mirror=next(iter(mirror.items())) if mirror else None)


def snapshot_from(data: dict[str, Any]) -> routes.RoutingSnapshot:
    endpoints = [endpoint_from(e) for e in data.get("endpoints", [])]
    return routes.RoutingSnapshot(version=data.get("version", 1),
                                  endpoints=routes.freeze({e.name: e for e in endpoints}),
                                  settings=routes.GatewaySettings(**data.get("settings", {})))


def app_from_file(path: Path, options: GatewayOptions) -> ScoringApp:
    """`ScoringApp` on the snapshot in `path`, its configuration published to /metrics (as
    the control plane's publish does)."""
    snapshot = snapshot_from(orjson.loads(path.read_bytes()))
    publish_config(snapshot)
    return ScoringApp(routes.SnapshotHolder(snapshot), options)


def loopback_socket(port_file: Path) -> socket.socket:
    """A socket listening on a free loopback port, that port written to `port_file` (the
    runner's parent waits for the file, so the port is taken before anyone connects)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(BACKLOG)
    port_file.write_text(str(sock.getsockname()[1]))
    return sock


def run_on_loopback(config: uvicorn.Config, port_file: Path) -> None:
    """Serve `config` on a free loopback port (written to `port_file`) until stopped."""
    uvicorn.Server(config).run(sockets=[loopback_socket(port_file)])
