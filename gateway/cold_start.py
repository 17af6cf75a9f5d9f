"""Waiting for a deployment scaled to zero: the first request holds until an instance is ready.

A deployment autoscaled with `min_instances: 0` may have no ready instance. Its requests then
wait (counted in `Admission.demand`, which the control plane's autoscaler samples, so the wait
itself starts an instance) for a snapshot that routes to one, up to the deployment's request
timeout, and get a 503 with a clear message after that. Only this cold path polls the holder;
a deployment with instances never comes here.
"""

from __future__ import annotations

import asyncio

from gateway.admission import Admission
from gateway.errors import GatewayError
from gateway.snapshot import DeploymentRoute, SnapshotHolder

POLL_S = 0.02  # how often a waiting request looks at the current snapshot


async def warm(holder: SnapshotHolder, admission: Admission,
               deployment: DeploymentRoute) -> DeploymentRoute:
    """`deployment` as routed once it has a ready instance; 503 when none came in time."""
    key = (deployment.endpoint, deployment.name)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deployment.request_timeout_s
    admission.start_waiting(key)
    try:
        while loop.time() < deadline:
            await asyncio.sleep(POLL_S)
            endpoint = holder.current.endpoints.get(deployment.endpoint)
            current = endpoint.deployments.get(deployment.name) if endpoint else None
            if current is None:
                break  # removed meanwhile
            if current.instances:
                return current
    finally:
        admission.end_waiting(key)
    raise GatewayError(503, f"deployment '{deployment.name}' is scaled to zero and no instance "
                            f"became ready within its request timeout "
                            f"({deployment.request_timeout_s:g} s, request_timeout_ms); it is "
                            "starting: retry shortly, or keep one instance warm with "
                            "scale_settings.min_instances: 1")
