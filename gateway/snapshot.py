"""The routing snapshot: the shared vocabulary of the data plane and the control plane.

The control plane compiles its committed state (plus which instances are ready) into one
`RoutingSnapshot` and publishes it with `SnapshotHolder.publish`. The hot path reads
`holder.current` once per request and never takes a lock: a snapshot is never changed in
place, it is replaced whole. This module imports nothing else from scoregate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

T = TypeVar("T")

AUTH_KEY = "key"
AUTH_AML_TOKEN = "aml_token"
AUTH_NONE = "none"  # only for tests and trusted loopback setups; never the default


@dataclass(frozen=True, slots=True)
class InstanceRoute:
    """One instance that may receive traffic. `url` is its base URL: http(s)://host:port[/path]
    for an external one, `unix:/path/to.sock` for a managed one (its Unix socket)."""

    id: str  # stable across snapshots ("blue-0", or the URL for external instances)
    url: str
    score_path: str = "/score"  # the path requests are sent to on this instance


@dataclass(frozen=True, slots=True)
class DeploymentRoute:
    name: str
    endpoint: str
    instances: tuple[InstanceRoute, ...]  # ready instances only; may be empty (→ 503)
    request_timeout_s: float = 5.0
    max_concurrent_requests_per_instance: int = 1  # gateway/admission.py: the 429 rule
    # Autoscaled to zero (min_instances 0): with no ready instance a request waits for one,
    # up to its request timeout, instead of a 503 at once (gateway/cold_start.py).
    scales_from_zero: bool = False


@dataclass(frozen=True, slots=True)
class EndpointRoute:
    name: str
    auth_mode: str = AUTH_KEY
    keys: tuple[bytes, ...] = ()  # primary and secondary key, compared in constant time
    token_secret: bytes = b""  # HMAC secret for aml_token tokens of this endpoint
    deployments: Mapping[str, DeploymentRoute] = field(default_factory=lambda: MappingProxyType({}))
    # Live traffic as (deployment, percent) pairs with percent > 0, in a stable order.
    traffic: tuple[tuple[str, int], ...] = ()
    # The single mirror entry (deployment, percent), or None when mirroring is off.
    mirror: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    max_body_bytes: int = 100 * 1024 * 1024
    mirror_max_in_flight: int = 64  # copies beyond this are dropped and counted
    mirror_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class RoutingSnapshot:
    version: int = 0
    endpoints: Mapping[str, EndpointRoute] = field(default_factory=lambda: MappingProxyType({}))
    settings: GatewaySettings = GatewaySettings()

    @property
    def default_endpoint(self) -> EndpointRoute | None:
        """The endpoint that plain `/score` reaches: the only one, if there is exactly one."""
        if len(self.endpoints) == 1:
            return next(iter(self.endpoints.values()))
        return None


def freeze(mapping: Mapping[str, T]) -> Mapping[str, T]:
    """A read-only copy, for the mappings a snapshot holds."""
    return MappingProxyType(dict(mapping))


class SnapshotHolder:
    """Holds the current snapshot; `publish` swaps it with one attribute assignment."""

    __slots__ = ("current",)

    def __init__(self, initial: RoutingSnapshot | None = None) -> None:
        self.current: RoutingSnapshot = initial or RoutingSnapshot()

    def publish(self, snapshot: RoutingSnapshot) -> None:
        if snapshot.version <= self.current.version and self.current.version != 0:
            raise ValueError(
                f"snapshot version {snapshot.version} is not newer than {self.current.version}"
            )
        self.current = snapshot
