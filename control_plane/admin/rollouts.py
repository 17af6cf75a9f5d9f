"""Admin API routes of rollouts: start, show, pause, resume, promote, abort.

`rollout_handlers(service)` gives the handlers keyed like `openapi.PATHS`; `app.py` adds them
to its routes. The admin API knows rollouts only as a `RolloutService` (the rollout engine is
one): `service()` gives it, or None while the server has not started it yet (503).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from starlette.requests import Request
from starlette.responses import Response

from control_plane.admin.rollout_doc import ACTIONS, GUARDRAILS, ROLLOUT, SCHEMAS
from control_plane.errors import ScoregateError, echo
from control_plane.specs.rollout import Guardrails, Rollout, RolloutRequest

Handler = Callable[[Request], Awaitable[Response]]


class RolloutsUnavailable(ScoregateError):
    status = 503


class RolloutService(Protocol):
    """What the admin API asks of rollouts; each call names the endpoint."""

    async def show(self, endpoint: str) -> Rollout: ...
    async def start(self, request: RolloutRequest) -> Rollout: ...
    async def pause(self, endpoint: str) -> Rollout: ...
    async def resume(self, endpoint: str) -> Rollout: ...
    async def promote(self, endpoint: str) -> Rollout: ...
    async def abort(self, endpoint: str) -> Rollout: ...


def rollout_handlers(service: Callable[[], RolloutService | None]
                     ) -> dict[str, dict[str, Handler]]:
    def engine() -> RolloutService:
        found = service()
        if found is None:
            raise RolloutsUnavailable("rollouts are not running on this server yet")
        return found

    async def show(request: Request) -> Response:
        return _answer(await engine().show(request.path_params["endpoint"]))

    async def start(request: Request) -> Response:
        body = await json_object(request)
        started = await engine().start(parse_start(request.path_params["endpoint"], body))
        return _answer(started, 201)

    def action(name: str) -> Handler:
        async def run(request: Request) -> Response:
            method: Callable[[str], Awaitable[Rollout]] = getattr(engine(), name)
            return _answer(await method(request.path_params["endpoint"]))
        return run

    handlers: dict[str, dict[str, Handler]] = {ROLLOUT: {"get": show, "post": start}}
    for name in ACTIONS:
        handlers[f"{ROLLOUT}/{name}"] = {"post": action(name)}
    return handlers


def parse_start(endpoint: str, body: dict[str, Any]) -> RolloutRequest:
    """A RolloutStart body → RolloutRequest; wrong shapes name the field."""
    fields = SCHEMAS["RolloutStart"]["properties"]
    refuse_unknown(body, fields, "the request body")
    if not isinstance(body.get("target"), str):
        raise ScoregateError("the request body needs the field 'target' (a deployment name)")
    values = {name: _typed(name, value, fields[name]) for name, value in body.items()
              if name != "guardrails"}
    if "steps" in values:
        values["steps"] = tuple(values["steps"])
    guards = body.get("guardrails") or {}
    if not isinstance(guards, dict):
        raise ScoregateError("'guardrails' must be an object")
    refuse_unknown(guards, GUARDRAILS["properties"], "'guardrails'")
    guardrails = Guardrails(**{name: _typed(f"guardrails.{name}", value,
                                            GUARDRAILS["properties"][name])
                               for name, value in guards.items()})
    return RolloutRequest(endpoint=endpoint, guardrails=guardrails, **values)


def refuse_unknown(body: dict[str, Any], fields: dict[str, Any], where: str) -> None:
    for name in body:
        if name not in fields:
            raise ScoregateError(f"{where} has an unknown field '{name}' "
                                 f"(known: {', '.join(sorted(fields))})")


def _typed(name: str, value: Any, schema: dict[str, Any]) -> Any:
    kind = str(schema.get("type"))
    if value is None and (schema.get("nullable") or kind == "number"):
        return None
    ok = _TYPE_CHECKS[kind]
    if not ok(value):
        wanted = {"string": "text", "integer": "a whole number", "number": "a number",
                  "array": "a list of whole numbers"}[kind]
        raise ScoregateError(f"'{name}' must be {wanted}, got {echo(value)}")
    return float(value) if kind == "number" else value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": _is_int,
    "number": lambda v: (_is_int(v) or isinstance(v, float)) and math.isfinite(v),
    "array": lambda v: isinstance(v, list) and all(_is_int(i) for i in v),
}


async def json_object(request: Request,
                      needs: str = "a JSON object body with at least 'target'") -> dict[str, Any]:
    """The request's JSON object body (checked by the caller's own parser), or a 400."""
    raw = await request.body()
    try:
        body = orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError as exc:
        raise ScoregateError(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ScoregateError(f"this request needs {needs}")
    return body


def _answer(rollout: Rollout, status: int = 200) -> Response:
    return Response(orjson.dumps(rollout.to_dict()), status, media_type="application/json")
