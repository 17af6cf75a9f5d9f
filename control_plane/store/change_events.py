"""The events the store's own changes raise, computed from the state before and after one
commit (`sqlite_store._commit` emits them into the outbox in the same transaction).

A deployment created or updated is Azure Event Grid's `ModelDeployed` (subject
`endpoints/E/deployments/D`; `data.serviceName` is the endpoint, as Azure names the service);
the rest carry scoregate's prefix. Order within one commit: endpoints created, deployments
deployed, deployments failed, traffic and mirror changed, deployments deleted, endpoints
deleted.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from control_plane.specs.resources import DeploymentSpec, EndpointSpec
from control_plane.store.outbox import AZURE_ML, SCOREGATE

ENDPOINT_CREATED = SCOREGATE + "endpoint.created"
ENDPOINT_DELETED = SCOREGATE + "endpoint.deleted"
MODEL_DEPLOYED = AZURE_ML + "ModelDeployed"
DEPLOYMENT_DELETED = SCOREGATE + "deployment.deleted"
DEPLOYMENT_FAILED = SCOREGATE + "deployment.failed"
TRAFFIC_CHANGED = SCOREGATE + "traffic.changed"
MIRROR_CHANGED = SCOREGATE + "mirror.changed"
TYPES = (ENDPOINT_CREATED, ENDPOINT_DELETED, MODEL_DEPLOYED, DEPLOYMENT_DELETED,
         DEPLOYMENT_FAILED, TRAFFIC_CHANGED, MIRROR_CHANGED)


@dataclass(frozen=True)
class Change:
    type: str
    subject: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Specs:
    """The specs of one committed state (deployments keyed `endpoint/name`)."""

    endpoints: Mapping[str, EndpointSpec]
    deployments: Mapping[str, DeploymentSpec]
    failures: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # key -> (op, reason)


def changes(before: Specs, after: Specs, writer: str | None) -> Iterator[Change]:
    old_endpoints, new_endpoints = before.endpoints, after.endpoints
    for name in sorted(new_endpoints.keys() - old_endpoints.keys()):
        spec = new_endpoints[name]
        yield Change(ENDPOINT_CREATED, endpoint_subject(name),
                     {"endpointName": name, "authMode": spec.auth_mode, "tags": spec.tags})
    for key, deployment in sorted(after.deployments.items()):
        old = before.deployments.get(key)
        if old is None or old != deployment:
            yield _deployed(deployment, "created" if old is None else "updated")
    for key, (operation, reason) in sorted(after.failures.items()):
        if before.failures.get(key) != (operation, reason) and key in after.deployments:
            failed = after.deployments[key]
            yield Change(DEPLOYMENT_FAILED, deployment_subject(failed.endpoint_name, failed.name),
                         {"endpointName": failed.endpoint_name, "deploymentName": failed.name,
                          "operation": operation, "reason": reason})
    for name in sorted(new_endpoints):
        yield from _percent_changes(name, old_endpoints.get(name), new_endpoints[name], writer)
    for key in sorted(before.deployments.keys() - after.deployments.keys()):
        gone = before.deployments[key]
        yield Change(DEPLOYMENT_DELETED, deployment_subject(gone.endpoint_name, gone.name),
                     {"endpointName": gone.endpoint_name, "deploymentName": gone.name})
    for name in sorted(old_endpoints.keys() - new_endpoints.keys()):
        yield Change(ENDPOINT_DELETED, endpoint_subject(name), {"endpointName": name})


def endpoint_subject(endpoint: str) -> str:
    return f"endpoints/{endpoint}"


def deployment_subject(endpoint: str, deployment: str) -> str:
    return f"endpoints/{endpoint}/deployments/{deployment}"


def _deployed(spec: DeploymentSpec, change: str) -> Change:
    """Event Grid's ModelDeployed data (serviceName, serviceComputeType, modelIds,
    serviceTags, serviceProperties), with the deployment's name and what happened added."""
    # Azure's modelIds are `name:version`; a model given by path (not registered) is its path.
    model_ids = (spec.model_ref or "").removeprefix("azureml:") or spec.model_path or ""
    return Change(MODEL_DEPLOYED, deployment_subject(spec.endpoint_name, spec.name), {
        "serviceName": spec.endpoint_name, "serviceComputeType": "scoregate",
        "modelIds": model_ids, "serviceTags": spec.tags,
        "serviceProperties": {"instanceCount": str(spec.instance_count),
                              "external": str(spec.is_external).lower()},
        "deploymentName": spec.name, "change": change})


def _percent_changes(name: str, old: EndpointSpec | None, new: EndpointSpec,
                     writer: str | None) -> Iterator[Change]:
    by = writer or "user"
    for kind, attribute in ((TRAFFIC_CHANGED, "traffic"), (MIRROR_CHANGED, "mirror_traffic")):
        previous = _live(getattr(old, attribute) if old is not None else {})
        now = _live(getattr(new, attribute))
        if previous != now:
            yield Change(kind, endpoint_subject(name), {
                "endpointName": name, "previous": previous, "current": now, "changedBy": by})


def _live(percents: Mapping[str, int]) -> dict[str, int]:
    return {deployment: p for deployment, p in sorted(percents.items()) if p}
