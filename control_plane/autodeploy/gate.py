"""The gate: score the policy's labelled rows on one deployment, then judge the metric.

Requests go through the gateway's scoring listener with the `azureml-model-deployment`
header (the candidate gets no live traffic yet, as `evaluate` and Azure's direct invocation
do) and the endpoint's own credential, so the gate covers the path a client uses. A few
requests run at once, never more than the deployment takes without queueing, so a gate never
floods the live deployment it also scores.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from control_plane.errors import ScoregateError
from control_plane.specs.autodeploy import Gate, GateData, GateVerdict
from control_plane.specs.labelled import read_predictions, request_body
from control_plane.specs.metrics import Label, compute

CONCURRENCY = 4
TIMEOUT_S = 60.0
RETRIES = 4  # on 429 or 503, after 0.2, 0.4, 0.8 s
RETRY_S = 0.2


@dataclass(frozen=True)
class Scored:
    """One deployment's answers: the metric when every request succeeded."""

    deployment: str
    value: float | None
    requests: int
    errors: int
    first_error: str = ""


async def score(client: httpx.AsyncClient, url: str, headers: dict[str, str], deployment: str,
                data: GateData, metric: str, capacity: int = CONCURRENCY) -> Scored:
    """`capacity`: the requests the deployment takes at once without queueing or answering
    429 (max_concurrent_requests_per_instance × instance_count), as `evaluate` bounds it."""
    labelled = data.labelled()
    numeric = metric in ("rmse", "mae")
    predictions: list[Label | None] = [None] * len(labelled.rows)
    errors: list[str] = []
    limit = asyncio.Semaphore(max(1, min(CONCURRENCY, capacity)))
    batches = [(start, min(start + data.batch_size, len(labelled.rows)))
               for start in range(0, len(labelled.rows), data.batch_size)]

    async def one(start: int, stop: int) -> None:
        body = request_body(labelled, start, stop, data.format)
        async with limit:
            try:
                response = await _post(client, url, body, {
                    **headers, "azureml-model-deployment": deployment,
                    "content-type": "application/json"})
                if response.status_code != 200:
                    raise ValueError(f"HTTP {response.status_code}: {response.text[:200]}")
                predictions[start:stop] = read_predictions(response.content, stop - start,
                                                           numeric)
            except (httpx.HTTPError, ValueError, ScoregateError) as error:
                errors.append(str(error) or type(error).__name__)

    await asyncio.gather(*(one(start, stop) for start, stop in batches))
    if errors:
        return Scored(deployment, None, len(batches), len(errors), errors[0])
    answered = [p for p in predictions if p is not None]
    try:
        value = compute(metric, labelled.labels, answered)
    except (ValueError, ScoregateError) as error:
        return Scored(deployment, None, len(batches), len(batches), str(error))
    return Scored(deployment, value, len(batches), 0)


async def _post(client: httpx.AsyncClient, url: str, body: bytes,
                headers: dict[str, str]) -> httpx.Response:
    """One request, tried again (bounded) when the gateway answers 429 or 503: a deployment
    busy with live traffic is no verdict on the model."""
    response = await client.post(url, content=body, headers=headers)
    for attempt in range(RETRIES - 1):
        if response.status_code not in (429, 503):
            break
        await asyncio.sleep(RETRY_S * 2 ** attempt)
        response = await client.post(url, content=body, headers=headers)
    return response


def verdict(gate: Gate, candidate: Scored, live: Scored | None, rows: int) -> GateVerdict:
    """Pure: pass or stop, with the measured values and one line saying why."""
    if candidate.value is None:
        live_value = None if live is None else live.value
        return GateVerdict(gate.metric, False, None, live_value, None, rows,
                           candidate.errors, f"{candidate.errors} of {candidate.requests} "
                           f"requests to {candidate.deployment} failed: {candidate.first_error}")
    if gate.relative and (live is None or live.value is None):
        why = live.first_error if live is not None else "no live deployment"
        return GateVerdict(gate.metric, False, candidate.value, None, None, rows, 0,
                           f"the live deployment could not be measured: {why}")
    live_value = None if live is None else live.value
    bound = gate.bound(live_value)
    passed = gate.passes(candidate.value, live_value)
    against = f" (live {live_value:.4f})" if live_value is not None else ""
    message = (f"{gate.metric} {candidate.value:.4f} on {rows} rows "
               f"{'meets' if passed else 'misses'} {gate.text()}: needs "
               f"{gate.operator} {bound:.4f}{against}")
    return GateVerdict(gate.metric, passed, candidate.value, live_value, bound, rows, 0, message)
