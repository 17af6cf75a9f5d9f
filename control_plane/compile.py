"""Compile committed state plus instance readiness into one frozen routing snapshot.

Pure: the same inputs always give the same snapshot. `serve` calls it after every accepted
change and every readiness change, then publishes the result with one attribute swap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from control_plane.specs.resources import DeploymentSpec, EndpointSpec
from control_plane.store.sqlite_store import deployment_key
from gateway import (
    DeploymentRoute,
    EndpointRoute,
    GatewaySettings,
    InstanceRoute,
    RoutingSnapshot,
    freeze,
)


class EndpointKeys(Protocol):
    @property
    def primary_key(self) -> str: ...
    @property
    def secondary_key(self) -> str: ...
    @property
    def token_secret(self) -> bytes: ...


DEFAULT_SETTINGS = GatewaySettings()  # frozen, so one instance serves every default


def compile_snapshot(
    version: int,
    endpoints: Mapping[str, EndpointSpec],
    deployments: Mapping[str, DeploymentSpec],
    secrets: Mapping[str, EndpointKeys],
    ready: Mapping[str, tuple[InstanceRoute, ...]],
    settings: GatewaySettings = DEFAULT_SETTINGS,
) -> RoutingSnapshot:
    routes: dict[str, EndpointRoute] = {}
    for name, endpoint in sorted(endpoints.items()):
        routes[name] = _endpoint_route(endpoint, deployments, secrets.get(name), ready)
    return RoutingSnapshot(version=version, endpoints=freeze(routes), settings=settings)


def _endpoint_route(
    endpoint: EndpointSpec,
    deployments: Mapping[str, DeploymentSpec],
    keys: EndpointKeys | None,
    ready: Mapping[str, tuple[InstanceRoute, ...]],
) -> EndpointRoute:
    own = {d.name: d for d in deployments.values() if d.endpoint_name == endpoint.name}
    routes = {
        name: DeploymentRoute(
            name=name,
            endpoint=endpoint.name,
            instances=ready.get(deployment_key(endpoint.name, name), ()),
            request_timeout_s=spec.request_settings.request_timeout_ms / 1000.0,
            max_concurrent_requests_per_instance=(
                spec.request_settings.max_concurrent_requests_per_instance
            ),
            scales_from_zero=(spec.scale_settings is not None
                              and spec.scale_settings.min_instances == 0),
        )
        for name, spec in sorted(own.items())
    }
    traffic = tuple(
        (name, int(percent))
        for name, percent in sorted(endpoint.traffic.items())
        if percent > 0 and name in routes
    )
    mirror = next(
        (
            (name, int(percent))
            for name, percent in sorted(endpoint.mirror_traffic.items())
            if percent > 0 and name in routes
        ),
        None,
    )
    return EndpointRoute(
        name=endpoint.name,
        auth_mode=endpoint.auth_mode,
        keys=(keys.primary_key.encode(), keys.secondary_key.encode()) if keys else (),
        token_secret=keys.token_secret if keys else b"",
        deployments=freeze(routes),
        traffic=traffic,
        mirror=mirror,
    )
