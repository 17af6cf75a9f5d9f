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
from dataclasses import fields
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
    """Every field of every route, by name: a field added to the snapshot types travels
    without a change here (only bytes and nested routes need converting)."""
    return {
        "version": snapshot.version,
        "settings": _fields(snapshot.settings),
        "endpoints": [_endpoint_to_wire(e) for e in snapshot.endpoints.values()],
    }


def _fields(route: Any) -> Message:
    return {f.name: getattr(route, f.name) for f in fields(route)}


def _endpoint_to_wire(endpoint: EndpointRoute) -> Message:
    data = _fields(endpoint)
    data["keys"] = [key.hex() for key in endpoint.keys]
    data["token_secret"] = endpoint.token_secret.hex()
    data["deployments"] = [
        {**_fields(d), "instances": [_fields(i) for i in d.instances]}
        for d in endpoint.deployments.values()
    ]
    return data


def snapshot_from_wire(data: Mapping[str, Any]) -> RoutingSnapshot:
    endpoints = {e["name"]: _endpoint_from_wire(e) for e in data["endpoints"]}
    return RoutingSnapshot(int(data["version"]), freeze(endpoints),
                           GatewaySettings(**data["settings"]))


def _endpoint_from_wire(data: Mapping[str, Any]) -> EndpointRoute:
    deployments = {
        d["name"]: DeploymentRoute(**{**d, "instances": tuple(InstanceRoute(**i)
                                                              for i in d["instances"])})
        for d in data["deployments"]
    }
    mirror = data["mirror"]
    return EndpointRoute(**{
        **data,
        "keys": tuple(bytes.fromhex(key) for key in data["keys"]),
        "token_secret": bytes.fromhex(data["token_secret"]),
        "deployments": freeze(deployments),
        "traffic": tuple((name, int(percent)) for name, percent in data["traffic"]),
        "mirror": (mirror[0], int(mirror[1])) if mirror is not None else None,
    })
