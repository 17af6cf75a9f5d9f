"""Admin API routes of auto-deploy policies: set (PUT), show (GET), disable (DELETE).

`autodeploy_handlers(service)` gives the handlers keyed like `openapi.PATHS`. The admin API
knows the feature only as an `AutoDeployService`; `service()` gives it, or None while the
server has not started it yet (503).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from starlette.requests import Request
from starlette.responses import Response

from control_plane.admin.autodeploy_doc import SCHEMAS
from control_plane.admin.rollouts import json_object, parse_start, refuse_unknown
from control_plane.errors import ScoregateError, echo
from control_plane.specs.autodeploy import AUTO_DEPLOY_PATH, GateData, Policy, parse_gate
from control_plane.specs.rollout import RolloutRequest

Handler = Callable[[Request], Awaitable[Response]]
_FIELDS = SCHEMAS["AutoDeployPolicy"]["properties"]
_DATA_FIELDS = _FIELDS["gate_data"]["properties"]


class AutoDeployUnavailable(ScoregateError):
    status = 503


class AutoDeployService(Protocol):
    async def set(self, policy: Policy) -> Policy: ...
    async def show(self, endpoint: str) -> dict[str, Any]: ...
    async def policy(self, endpoint: str) -> dict[str, Any] | None: ...
    async def disable(self, endpoint: str) -> dict[str, Any]: ...


def autodeploy_handlers(service: Callable[[], AutoDeployService | None]
                        ) -> dict[str, dict[str, Handler]]:
    def feature() -> AutoDeployService:
        found = service()
        if found is None:
            raise AutoDeployUnavailable("auto-deploy is not running on this server yet")
        return found

    async def show(request: Request) -> Response:
        return _answer(await feature().show(request.path_params["endpoint"]))

    async def put(request: Request) -> Response:
        endpoint = request.path_params["endpoint"]
        policy = parse_policy(endpoint, await json_object(
            request, "a JSON object body with at least 'model'"))
        await feature().set(policy)
        return _answer(await feature().show(endpoint))

    async def delete(request: Request) -> Response:
        return _answer(await feature().disable(request.path_params["endpoint"]))

    return {AUTO_DEPLOY_PATH: {"get": show, "put": put, "delete": delete}}


def parse_policy(endpoint: str, body: dict[str, Any]) -> Policy:
    """An AutoDeployPolicy body → Policy; wrong shapes name the field."""
    refuse_unknown(body, _FIELDS, "the request body")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ScoregateError("the request body needs the field 'model' (a registered model's "
                             "name)")
    for name in ("from_deployment", "gate", "on_gate_failure", "old_deployment"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise ScoregateError(f"'{name}' must be text, got {echo(body[name])}")
    rollout = body.get("rollout") or {}
    if not isinstance(rollout, dict):
        raise ScoregateError("'rollout' must be an object")
    if "target" in rollout:
        raise ScoregateError("'rollout' has no 'target': each new version is the target")
    request: RolloutRequest = parse_start(endpoint, {**rollout, "target": "-"})
    gate = body.get("gate")
    policy = Policy(endpoint=endpoint, model=model, rollout=request,
                    from_deployment=body.get("from_deployment"),
                    gate=None if gate is None else parse_gate(gate),
                    gate_data=_gate_data(body.get("gate_data")),
                    on_gate_failure=body.get("on_gate_failure") or "keep",
                    old_deployment=body.get("old_deployment") or "delete")
    policy.check()
    return policy


def _gate_data(data: Any) -> GateData | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ScoregateError("'gate_data' must be an object")
    refuse_unknown(data, _DATA_FIELDS, "'gate_data'")
    for name in ("columns", "rows", "labels"):
        if not isinstance(data.get(name), list):
            raise ScoregateError(f"'gate_data.{name}' must be a list")
    if not all(isinstance(row, list) for row in data["rows"]):
        raise ScoregateError("'gate_data.rows' must be a list of lists (one per row)")
    if not isinstance(data.get("label_column"), str):
        raise ScoregateError("'gate_data.label_column' must be text")
    if not isinstance(data.get("batch_size", 10), int):
        raise ScoregateError("'gate_data.batch_size' must be a whole number")
    return GateData.from_dict(data)


def _answer(data: dict[str, Any]) -> Response:
    return Response(orjson.dumps(data), 200, media_type="application/json")
