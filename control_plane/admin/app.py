"""The admin API: endpoints, deployments, traffic and credentials over JSON, on its own listener.

Every route but `GET /openapi.json` needs `Authorization: Bearer <admin token>`; the document
stays open because it holds no state and tools (schemathesis, editors) fetch it first.
Each accepted write is committed by the store, then `runtime.apply_change()` turns it into a
published snapshot; the answer carries that snapshot's version and when it took effect.
A deployment's create, update and delete are operations (`provisioning_state`): the answer
comes once the operation ended (`Succeeded` or `Failed`, as `az ml` waits), or at once with
`?wait=false` (`Creating`, `Updating`, `Deleting`; `show` tells the rest). A create or update
that fails is answered with the deployment in `Failed` and `provisioning_message` (why, and the
instance log's last lines), not with an error status: the deployment is stored, as in Azure.
Store calls run in a worker thread so a slow `fsync` never stalls the scoring listener that
shares this event loop. Errors are `{"message": ..., "rule"?: ...}`; nothing else leaks.
"""

from __future__ import annotations

import functools
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio.to_thread
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from control_plane.admin.autodeploy import AutoDeployService, autodeploy_handlers
from control_plane.admin.comparison import comparison_json
from control_plane.admin.environments import environment_handlers
from control_plane.admin.events import event_handlers
from control_plane.admin.models import ModelService, model_handlers
from control_plane.admin.openapi import PATHS, json_body, openapi_document
from control_plane.admin.rollouts import RolloutService, rollout_handlers
from control_plane.environments.deployments import DeploymentEnvironments, EnvironmentStatus
from control_plane.errors import Conflict, PayloadTooLarge, ScoregateError, ValidationError, echo
from control_plane.specs.resources import DeploymentSpec, EndpointSpec
from control_plane.specs.schema import deployment_from_mapping
from control_plane.specs.validation import validate_deployment
from control_plane.store.provisioning import Provisioning
from gateway import ComparisonReport, bearer, issue_token

if TYPE_CHECKING:
    from control_plane.events import EventSubscriptions
    from control_plane.instances.managed import InstanceStatus
    from control_plane.store.sqlite_store import Record, Store

TOKEN_TTL_S = 3600.0  # aml_token lifetime given by get-credentials; refresh after half of it
MAX_LOG_LINES = 100_000
MAX_ADMIN_BODY_BYTES = 1024 * 1024  # the largest admin body (a deployment spec is a few KB)
_MERGED_FIELDS = frozenset({"tags", "environment_variables", "request_settings",
                            "liveness_probe", "readiness_probe", "batching", "scale_settings",
                            "rolling_update"})
_MODEL_FIELDS = frozenset({"model_path", "model_ref", "model_type"})
_log = logging.getLogger("scoregate.admin")
T = TypeVar("T")
Handler = Callable[[Request], Awaitable[Response]]


class AdminRuntime(Protocol):
    """What the admin API needs from the running server (`serve` implements it)."""

    @property
    def store(self) -> Store: ...
    @property
    def admin_token(self) -> str: ...
    @property
    def scoring_url(self) -> str: ...  # base URL of the scoring listener, no trailing slash
    @property
    def scoring_on_loopback(self) -> bool: ...  # whether `--local` endpoints need no key

    async def apply_change(self, build: bool = True) -> int:
        """Bring instances and the data plane in line with the store; the new snapshot version.
        `build=False`: environments still to build are built in the background."""
        ...

    async def provision(self, key: str, wait: bool = True) -> None:
        """Follow the deployment operation just stored for `key` to its end (in the
        background); with `wait`, return once it ended."""
        ...

    @property
    def rollouts(self) -> RolloutService | None: ...  # None until `serve` started them
    @property
    def models(self) -> ModelService | None: ...  # None until `serve` recovered the registry
    @property
    def events(self) -> EventSubscriptions | None: ...  # None until `serve` started delivery
    @property
    def autodeploy(self) -> AutoDeployService | None: ...  # None until `serve` started it

    def instance_status(self, key: str) -> Sequence[InstanceStatus]: ...  # "endpoint/deployment"
    def scale_status(self, key: str) -> Mapping[str, Any] | None: ...  # None: a fixed count
    def rolling_status(self, key: str) -> Mapping[str, object] | None: ...  # batch i/n, state
    def environment_status(self, key: str) -> EnvironmentStatus | None: ...
    @property
    def environments(self) -> object: ...  # the server's DeploymentEnvironments
    def logs(self, key: str, lines: int) -> str: ...
    def comparisons(self, endpoint: str, deployment: str) -> ComparisonReport: ...


def build_admin_app(runtime: AdminRuntime,
                    metrics: Callable[[], Awaitable[tuple[bytes, str]]] | None = None,
                    ) -> Starlette:
    """The admin API; with `metrics` (serve --metrics-on admin; with workers it collects their
    samples, hence async), also `GET /metrics`, open
    like /openapi.json: it holds names, weights and counts, no credential, and a scraper
    should not need the admin token, which can change routing (docs/security.md)."""
    api = _AdminApi(runtime)
    routes = [Route("/openapi.json", api.openapi, methods=["GET"])]
    open_paths: tuple[str, ...] = ("/openapi.json",)
    if metrics is not None:
        routes.append(Route("/metrics", _metrics_endpoint(metrics), methods=["GET"]))
        open_paths += ("/metrics",)
    for path, methods in _handlers(api).items():
        if path not in PATHS or set(methods) != set(PATHS[path]):
            raise RuntimeError(f"admin route {path} and the OpenAPI document disagree")
        for method, handler in methods.items():
            routes.append(Route(path, handler, methods=[method.upper()]))
    guard = Middleware(_RequireToken, token=runtime.admin_token, open_paths=open_paths)
    cap = Middleware(_CapBody, limit=MAX_ADMIN_BODY_BYTES)
    return Starlette(routes=routes, middleware=[guard, cap], exception_handlers={
        ScoregateError: _scoregate_error, HTTPException: _http_error, Exception: _internal_error,
    })


def _metrics_endpoint(render: Callable[[], Awaitable[tuple[bytes, str]]]) -> Handler:
    async def metrics(request: Request) -> Response:
        body, content_type = await render()
        return Response(body, media_type=content_type)
    return metrics


def _handlers(api: _AdminApi) -> dict[str, dict[str, Handler]]:
    e, d = "/v1/endpoints/{endpoint}", "/v1/endpoints/{endpoint}/deployments/{deployment}"
    return {
        "/v1/endpoints": {"get": api.list_endpoints, "post": api.create_endpoint},
        e: {"get": api.show_endpoint, "patch": api.update_endpoint, "delete": api.delete_endpoint},
        e + "/traffic": {"put": api.set_traffic},
        e + "/mirror-traffic": {"put": api.set_mirror},
        e + "/get-credentials": {"post": api.get_credentials},
        e + "/regenerate-keys": {"post": api.regenerate_keys},
        e + "/deployments": {"get": api.list_deployments, "post": api.create_deployment},
        d: {"get": api.show_deployment, "patch": api.update_deployment,
            "delete": api.delete_deployment},
        d + "/logs": {"get": api.logs},
        d + "/compare": {"get": api.compare},
        **rollout_handlers(lambda: api.runtime.rollouts),
        **model_handlers(lambda: api.runtime.models, _if_match),
        **event_handlers(lambda: api.runtime.store, lambda: api.runtime.events),
        **autodeploy_handlers(lambda: api.runtime.autodeploy),
        **environment_handlers(api.runtime),
    }


class _AdminApi:
    def __init__(self, runtime: AdminRuntime) -> None:
        self.runtime = runtime

    async def openapi(self, request: Request) -> Response:
        return _json(openapi_document(str(request.base_url).rstrip("/")))

    # --- endpoints -------------------------------------------------------------------------

    async def list_endpoints(self, request: Request) -> Response:
        endpoints = await self._store(self.runtime.store.endpoints)
        return _json([self._endpoint_view(record) for record in endpoints.values()])

    async def show_endpoint(self, request: Request) -> Response:
        name = request.path_params["endpoint"]
        record = await self._store(self.runtime.store.endpoint, name)
        feature = self.runtime.autodeploy
        policy = None if feature is None else await feature.policy(name)
        return self._endpoint_answer(record, {"auto_deploy": policy})

    async def create_endpoint(self, request: Request) -> Response:
        spec = EndpointSpec.from_dict(await json_body(request, "EndpointCreate"))
        if spec.local and not self.runtime.scoring_on_loopback:
            raise ValidationError("local-endpoint", f"endpoint {spec.name}: --local endpoints "
                                  "take requests without a key, so they are refused while the "
                                  "scoring listener is not bound to loopback (serve --host "
                                  "127.0.0.1); create it without --local")
        record = await self._store(self.runtime.store.create_endpoint, spec)
        return self._endpoint_answer(record, await self._applied(), status=201)

    async def update_endpoint(self, request: Request) -> Response:
        name = request.path_params["endpoint"]
        patch = await json_body(request, "EndpointPatch")

        def revise(spec: EndpointSpec) -> EndpointSpec:
            return EndpointSpec.from_dict(_merge(spec.to_dict(), patch))

        record = await self._store(self.runtime.store.patch_endpoint, name, revise,
                                   if_match=_if_match(request))
        return self._endpoint_answer(record, await self._applied())

    async def delete_endpoint(self, request: Request) -> Response:
        name = request.path_params["endpoint"]
        await self._store(self.runtime.store.delete_endpoint, name, if_match=_if_match(request))
        return await self._written(f"deleted endpoint {name} and its deployments")

    async def set_traffic(self, request: Request) -> Response:
        return await self._set_percents(request, "set_traffic")

    async def set_mirror(self, request: Request) -> Response:
        return await self._set_percents(request, "set_mirror")

    async def _set_percents(self, request: Request, method: str) -> Response:
        name = request.path_params["endpoint"]
        body = await json_body(request, "Percents")
        record = await self._store(getattr(self.runtime.store, method), name, body,
                                   if_match=_if_match(request))
        return self._endpoint_answer(record, await self._applied())

    async def get_credentials(self, request: Request) -> Response:
        name = request.path_params["endpoint"]
        record = await self._store(self.runtime.store.endpoint, name)
        secrets = await self._store(self.runtime.store.secrets, name)
        if record.spec.auth_mode != "aml_token":
            return _json({"primaryKey": secrets.primary_key, "secondaryKey": secrets.secondary_key})
        now = time.time()
        token, expiry = issue_token(name, secrets.token_secret, TOKEN_TTL_S, now=now)
        return _json({"accessToken": token, "tokenType": "Bearer", "expiryTimeUtc": int(expiry),
                      "refreshAfterTimeUtc": int(now + TOKEN_TTL_S / 2)})

    async def regenerate_keys(self, request: Request) -> Response:
        name = request.path_params["endpoint"]
        key_type = (await json_body(request, "KeyType"))["key_type"]
        await self._store(self.runtime.store.regenerate_key, name, key_type)
        return await self._written(f"regenerated the {key_type} key of endpoint {name}")

    # --- deployments -----------------------------------------------------------------------

    async def list_deployments(self, request: Request) -> Response:
        endpoint = request.path_params["endpoint"]
        records = await self._store(self.runtime.store.deployments, endpoint)
        state = await self._store(self.runtime.store.state)
        return _json([self._deployment_view(record, state.status(key))
                      for key, record in records.items()])

    async def show_deployment(self, request: Request) -> Response:
        return await self._deployment_now(*_deployment_key(request))

    async def create_deployment(self, request: Request) -> Response:
        endpoint = request.path_params["endpoint"]
        body = await json_body(request, "DeploymentCreate")
        if body.setdefault("endpoint_name", endpoint) != endpoint:
            raise ValidationError("endpoint-name", f"the body names endpoint "
                                  f"{body['endpoint_name']} but the path names {endpoint}")
        spec = _checked_sources(DeploymentSpec.from_dict(body))
        all_traffic = _flag(request.query_params.get("all_traffic"), "all_traffic")
        wait = _flag(request.query_params.get("wait"), "wait", default=True)
        existing = await self._store(self.runtime.store.deployments, endpoint)
        if f"{endpoint}/{spec.name}" in existing:  # refused before an inline model registers
            raise Conflict(f"deployment {spec.name} of endpoint {endpoint} exists; update it "
                           "instead")
        spec = await self._store(self._captured, await self._bound(spec))
        await self._store(self.runtime.store.create_deployment, spec, all_traffic=all_traffic)
        applied = await self._applied()
        await self.runtime.provision(f"{endpoint}/{spec.name}", wait)
        return await self._deployment_now(endpoint, spec.name, applied, 201)

    async def update_deployment(self, request: Request) -> Response:
        endpoint, name = _deployment_key(request)
        patch = await json_body(request, "DeploymentPatch")
        model = await self._patched_model(endpoint, name, patch)

        def revise(spec: DeploymentSpec) -> DeploymentSpec:
            revised = _checked_sources(DeploymentSpec.from_dict(_merge(spec.to_dict(), patch)))
            return self._captured(revised if model is None else revised.with_changes(**model))

        wait = _flag(request.query_params.get("wait"), "wait", default=True)
        await self._store(self.runtime.store.patch_deployment, endpoint, name, revise,
                          if_match=_if_match(request))
        applied = await self._applied()
        await self.runtime.provision(f"{endpoint}/{name}", wait)
        return await self._deployment_now(endpoint, name, applied)

    async def delete_deployment(self, request: Request) -> Response:
        endpoint, name = _deployment_key(request)
        wait = _flag(request.query_params.get("wait"), "wait", default=True)
        await self._store(self.runtime.store.begin_delete, endpoint, name,
                          if_match=_if_match(request))
        applied = await self._applied()
        await self.runtime.provision(f"{endpoint}/{name}", wait)
        done = "deleted" if wait else "deleting"
        return _json({"message": f"{done} deployment {name} of endpoint {endpoint}", **applied})

    async def logs(self, request: Request) -> Response:
        endpoint, name = _deployment_key(request)
        lines = _lines(request.query_params.get("lines"))
        await self._store(self.runtime.store.deployment, endpoint, name)
        text = await anyio.to_thread.run_sync(self.runtime.logs, f"{endpoint}/{name}", lines)
        return _json({"logs": text})

    async def compare(self, request: Request) -> Response:
        endpoint, name = _deployment_key(request)
        await self._store(self.runtime.store.deployment, endpoint, name)  # 404 if unknown
        return _json(comparison_json(self.runtime.comparisons(endpoint, name)))

    async def _bound(self, spec: DeploymentSpec) -> DeploymentSpec:
        """The spec with its model resolved by the registry (in a thread: an inline model is
        copied); the store's commit checks the version still exists."""
        if spec.model_ref is None and spec.model_path is None:  # external `urls:`
            return spec
        registry = self.runtime.models
        if registry is None:
            raise ScoregateError("the model registry is not running on this server yet; "
                                 "retry in a moment")
        return await self._store(registry.bind, spec)

    def _captured(self, spec: DeploymentSpec) -> DeploymentSpec:
        """An inline conda file copied into the state folder, as stored (blocking)."""
        environments = self.runtime.environments
        if isinstance(environments, DeploymentEnvironments):
            return environments.capture(spec)
        return spec

    async def _patched_model(self, endpoint: str, name: str,
                             patch: Mapping[str, Any]) -> dict[str, Any] | None:
        """A patch that names the model replaces all of it (path, reference and type), resolved
        now; one that does not keeps the version the deployment was bound to."""
        if not _MODEL_FIELDS & patch.keys():
            return None
        current = (await self._store(self.runtime.store.deployment, endpoint, name)).spec
        model = {field: patch.get(field) for field in _MODEL_FIELDS}
        candidate = _checked_sources(current.with_changes(**model))
        bound = await self._bound(candidate)
        return {field: getattr(bound, field) for field in _MODEL_FIELDS}

    # --- shared steps ----------------------------------------------------------------------

    async def _store(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await anyio.to_thread.run_sync(functools.partial(call, *args, **kwargs))

    async def _applied(self) -> dict[str, Any]:
        version = await self.runtime.apply_change(build=False)  # an answer never waits on a
        # build: the deployment's operation (`provision`) waits for it, its progress in `show`
        effective = datetime.now(UTC).isoformat(timespec="milliseconds")
        return {"snapshot_version": version, "effective_at": effective.replace("+00:00", "Z")}

    async def _written(self, message: str) -> Response:
        return _json({"message": message, **await self._applied()})

    def _endpoint_answer(self, record: Record[EndpointSpec], extra: Mapping[str, Any] | None = None,
                         status: int = 200) -> Response:
        return _json({**self._endpoint_view(record), **(extra or {})}, status, etag=record.etag)

    async def _deployment_now(self, endpoint: str, name: str,
                              extra: Mapping[str, Any] | None = None,
                              status: int = 200) -> Response:
        """The deployment as stored now, with its provisioning state (one read)."""
        def read() -> tuple[Record[DeploymentSpec], Provisioning]:
            state = self.runtime.store.state()
            record = state.deployments.get(f"{endpoint}/{name}")
            if record is None:
                return self.runtime.store.deployment(endpoint, name), Provisioning()  # 404s
            return record, state.status(f"{endpoint}/{name}")

        record, provisioning = await self._store(read)
        view = self._deployment_view(record, provisioning)
        return _json({**view, **(extra or {})}, status, etag=record.etag)

    def _endpoint_view(self, record: Record[EndpointSpec]) -> dict[str, Any]:
        """What `az ml online-endpoint show` gives, where it means something here (the store
        already lists every deployment in `traffic`, 0 for those without live traffic)."""
        spec = record.spec
        base = f"{self.runtime.scoring_url}/endpoints/{spec.name}"
        keyless = spec.local and self.runtime.scoring_on_loopback
        return {
            "name": spec.name,
            "auth_mode": "none" if keyless else spec.auth_mode,
            "local": spec.local,
            "traffic": spec.traffic,
            "mirror_traffic": spec.mirror_traffic,
            "scoring_uri": f"{base}/score",
            "swagger_uri": f"{base}/swagger.json",
            "openapi_uri": f"{base}/swagger.json",  # the name `az ml online-endpoint show` uses
            "provisioning_state": "Succeeded",
            "description": spec.description,
            "tags": spec.tags,
            "not_applied": spec.not_applied,
            "etag": record.etag,
        }

    def _deployment_view(self, record: Record[DeploymentSpec],
                         provisioning: Provisioning) -> dict[str, Any]:
        spec = record.spec
        key = f"{spec.endpoint_name}/{spec.name}"
        statuses = self.runtime.instance_status(key)  # in memory, owned by this event loop
        message: dict[str, Any] = (
            {"provisioning_message": provisioning.reason} if provisioning.reason else {})
        scale_status = self.runtime.scale_status(key)
        if scale_status is not None:  # autoscaled: the count decided and the last decisions
            message["scale_status"] = dict(scale_status)
        rolling = self.runtime.rolling_status(key)
        progress = {"rolling_update_status": dict(rolling)} if rolling is not None else {}
        environment = self.runtime.environment_status(key)
        return {**spec.to_dict(), "model": spec.model_ref or spec.model_path,
                "provisioning_state": provisioning.state, **message, **progress,
                "environment_status": environment.to_dict() if environment else None,
                "instances": [_instance_view(status) for status in statuses],
                "etag": record.etag}


# --- request parsing -----------------------------------------------------------------------

def _merge(current: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Fields given replace the current ones; objects of settings or of strings merge into
    theirs instead, and a null inside them removes that key (JSON merge patch)."""
    merged = dict(current)
    for name, value in patch.items():
        if name in _MERGED_FIELDS and isinstance(value, dict):
            inner = {**(merged.get(name) or {}), **value}
            merged[name] = {k: v for k, v in inner.items() if v is not None}
        else:
            merged[name] = value
    return merged


def _checked_sources(spec: DeploymentSpec) -> DeploymentSpec:
    """The YAML loader's rules for what a deployment runs (code and script that exist, or
    http(s) URLs, not both; a model path that exists), applied to a JSON body's fields."""
    validate_deployment(spec)  # names, settings and probes first, with their rule ids
    for field_name in ("model_path", "code_dir"):
        value = getattr(spec, field_name)
        if value is not None and not value.startswith("/"):
            raise ScoregateError(f"{field_name} must be an absolute path, got {echo(value)} "
                                 "(the CLI resolves paths against the YAML file's folder)")
    azure: dict[str, Any] = {"name": spec.name, "endpoint_name": spec.endpoint_name}
    if spec.model_path is not None:
        azure["model"] = {"path": spec.model_path, "type": spec.model_type}
    elif spec.model_ref is not None:  # a reference: its type is known once it resolves
        azure["model"] = spec.model_ref
    if spec.code_dir is not None or spec.scoring_script is not None:
        azure["code_configuration"] = {"code": spec.code_dir, "scoring_script": spec.scoring_script}
    if spec.urls:
        azure["urls"] = list(spec.urls)
    checked = deployment_from_mapping(azure, "request body", Path("/"))
    model_type = checked.model_type if spec.model_path is not None else spec.model_type
    return spec.with_changes(model_path=checked.model_path, model_type=model_type,
                             code_dir=checked.code_dir,
                             scoring_script=checked.scoring_script, urls=checked.urls)


def _deployment_key(request: Request) -> tuple[str, str]:
    return request.path_params["endpoint"], request.path_params["deployment"]


def _if_match(request: Request) -> str | None:
    """The one ETag of If-Match, unquoted; None when absent or `*` (any current version)."""
    header = request.headers.get("if-match")
    if header is None or header.strip() == "*":
        return None
    values = [v.strip() for v in header.split(",") if v.strip()]
    if len(values) != 1:
        raise ScoregateError("If-Match must name exactly one ETag")
    value = values[0].removeprefix("W/")
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def _flag(value: str | None, name: str, default: bool = False) -> bool:
    if value is None:
        return default
    if value.lower() in ("false", "0", ""):
        return False
    if value.lower() in ("true", "1"):
        return True
    raise ScoregateError(f"query parameter {name} must be true or false, got {echo(value)}")


def _lines(value: str | None) -> int:
    if value is None:
        return 5000
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_LOG_LINES:
        raise ScoregateError(f"lines must be a whole number from 1 to {MAX_LOG_LINES}, "
                             f"got {echo(value)}")
    return int(value)


def _instance_view(status: InstanceStatus) -> dict[str, Any]:
    """An `InstanceStatus` (a frozen dataclass of plain values) as JSON."""
    return asdict(status)


# --- answers -------------------------------------------------------------------------------

def _json(content: Any, status: int = 200, etag: str | None = None) -> Response:
    headers = {"ETag": f'"{etag}"'} if etag is not None else None
    return Response(orjson.dumps(content), status, headers, media_type="application/json")


def _error(status: int, message: str, **headers: str) -> Response:
    response = _json({"message": message}, status)
    response.headers.update(headers)
    return response


async def _scoregate_error(request: Request, exc: Exception) -> Response:
    rule = getattr(exc, "rule", None)
    status = getattr(exc, "status", 400)
    return _json({"message": str(exc), **({"rule": rule} if rule else {})}, status)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    detail = {404: f"no admin route {request.url.path} (see /openapi.json)",
              405: f"{request.method} is not allowed on {request.url.path}"}
    return _error(status, detail.get(status, str(getattr(exc, "detail", exc))))


async def _internal_error(request: Request, exc: Exception) -> Response:
    _log.error("admin API %s %s failed", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal error in the admin API; the server log has the details")


class _CapBody:
    """Pure ASGI: a body above `limit` bytes is a 413 (JSON) and is never buffered beyond the
    limit: a declared Content-Length above it is refused before reading, a chunked body as
    soon as the bytes counted pass it (the route reading it gets `PayloadTooLarge`)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await _error(413, self._message(), Connection="close")(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise PayloadTooLarge(self._message())
            return message

        await self.app(scope, counted, send)

    def _message(self) -> str:
        return f"the request body is larger than the admin API accepts ({self.limit} bytes)"


class _RequireToken:
    """Pure ASGI guard: `Authorization: Bearer <admin token>`, compared in constant time."""

    def __init__(self, app: ASGIApp, token: str, open_paths: tuple[str, ...]) -> None:
        self.app = app
        self.token = token.encode()
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        response = _error(401, "the admin API needs 'Authorization: Bearer <admin token>' "
                               "(the token is in $SCOREGATE_HOME/admin_token)")
        response.headers["WWW-Authenticate"] = "Bearer"
        await response(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        header = dict(scope["headers"]).get(b"authorization")
        given = bearer(header)
        return bool(self.token) and given is not None and hmac.compare_digest(given, self.token)
