"""The control channel between `serve` and its data-plane workers: framed JSON messages, and
the routing snapshot as JSON.

One stream socket per worker. A frame is a 4-byte big-endian length and an orjson body. The
snapshot travels whole (with its version) and is rebuilt frozen on the other side, so a
worker swaps it in exactly as the single-process gateway does; it is never patched.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.snapshot import (
    DeploymentRoute,
    EndpointRoute,
    GatewaySettings,
    InstanceRoute,
    RoutingSnapshot,
    freeze,
)

_LENGTH = struct.Struct(">I")
MAX_FRAME_BYTES = 256 * 1024 * 1024  # a snapshot of 20 deployments per endpoint is far below

Message = dict[str, Any]


def frame(message: Mapping[str, Any]) -> bytes:
    body = orjson.dumps(message)
    return _LENGTH.pack(len(body)) + body


async def read_message(reader: asyncio.StreamReader) -> Message:
    """The next message; `asyncio.IncompleteReadError` at end of stream."""
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if length > MAX_FRAME_BYTES:
        raise ValueError(f"control frame of {length} bytes is larger than {MAX_FRAME_BYTES}")
    message = orjson.loads(await reader.readexactly(length))
    if not isinstance(message, dict):
        raise ValueError("control frame is not a JSON object")
    return message


def snapshot_to_wire(snapshot: RoutingSnapshot) -> Message:
    settings = snapshot.settings
    return {
        "version": snapshot.version,
        "settings": [settings.max_body_bytes, settings.mirror_max_in_flight,
                     settings.mirror_timeout_s],
        "endpoints": [_endpoint_to_wire(e) for e in snapshot.endpoints.values()],
    }


def _endpoint_to_wire(endpoint: EndpointRoute) -> Message:
    return {
        "name": endpoint.name,
        "auth_mode": endpoint.auth_mode,
        "keys": [key.hex() for key in endpoint.keys],
        "token_secret": endpoint.token_secret.hex(),
        "traffic": [list(pair) for pair in endpoint.traffic],
        "mirror": list(endpoint.mirror) if endpoint.mirror is not None else None,
        "deployments": [
            [d.name, d.endpoint, d.request_timeout_s, d.max_concurrent_requests_per_instance,
             [[i.id, i.url, i.score_path] for i in d.instances]]
            for d in endpoint.deployments.values()
        ],
    }


def snapshot_from_wire(data: Mapping[str, Any]) -> RoutingSnapshot:
    max_body, mirror_max, mirror_timeout = data["settings"]
    endpoints = {e["name"]: _endpoint_from_wire(e) for e in data["endpoints"]}
    return RoutingSnapshot(int(data["version"]), freeze(endpoints),
                           GatewaySettings(int(max_body), int(mirror_max), float(mirror_timeout)))


def _endpoint_from_wire(data: Mapping[str, Any]) -> EndpointRoute:
    deployments = {
        name: DeploymentRoute(name, endpoint,
                              tuple(InstanceRoute(i, url, path) for i, url, path in instances),
                              float(timeout), int(concurrency))
        for name, endpoint, timeout, concurrency, instances in data["deployments"]
    }
    mirror = data["mirror"]
    return EndpointRoute(
        name=data["name"],
        auth_mode=data["auth_mode"],
        keys=tuple(bytes.fromhex(key) for key in data["keys"]),
        token_secret=bytes.fromhex(data["token_secret"]),
        deployments=freeze(deployments),
        traffic=tuple((name, int(percent)) for name, percent in data["traffic"]),
        mirror=(mirror[0], int(mirror[1])) if mirror is not None else None,
    )
