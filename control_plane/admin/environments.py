"""Admin API routes of environments: registered ones (create, list, show, archive, restore),
builds ahead of time, and the environments built on this machine (disk use, gc).

`environment_handlers(runtime)` gives the handlers keyed like `openapi.PATHS`. Registered
environments live in the store (`EnvironmentService`); builds and gc need the server's
`DeploymentEnvironments` (`runtime.environments`, set by `serve`). Builds and gc block, so they
run off the event loop.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import anyio.to_thread
import orjson
import yaml
from starlette.requests import Request
from starlette.responses import Response

from control_plane.admin.environment_doc import BUILDS, BUILT, ENVIRONMENT, ENVIRONMENTS
from control_plane.admin.openapi import check_body
from control_plane.environments import gc
from control_plane.environments.deployments import DeploymentEnvironments
from control_plane.environments.registered import RegisteredEnvironment, environment_spec
from control_plane.environments.service import EnvironmentService
from control_plane.errors import ConfigError, ScoregateError
from control_plane.specs.resources import DeploymentSpec
from control_plane.store.sqlite_store import Store
from control_plane.tasks import off_loop

Handler = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")


class EnvironmentsUnavailable(ScoregateError):
    status = 503


class EnvironmentsRuntime(Protocol):
    @property
    def store(self) -> Store: ...
    @property
    def environments(self) -> object: ...  # DeploymentEnvironments once `serve` set it


def environment_handlers(runtime: EnvironmentsRuntime) -> dict[str, dict[str, Handler]]:
    api = _EnvironmentsApi(runtime)
    return {
        ENVIRONMENTS: {"get": api.list_all, "post": api.create},
        ENVIRONMENT: {"get": api.show},
        ENVIRONMENT + "/versions": {"get": api.versions},
        ENVIRONMENT + "/archive": {"post": api.archive},
        ENVIRONMENT + "/restore": {"post": api.restore},
        BUILDS: {"post": api.build},
        BUILT: {"get": api.built},
        BUILT + "/gc": {"post": api.collect},
    }


class _EnvironmentsApi:
    def __init__(self, runtime: EnvironmentsRuntime) -> None:
        self.runtime = runtime

    def service(self) -> EnvironmentService:
        return EnvironmentService(self.runtime.store)  # stateless over the store

    def environments(self) -> DeploymentEnvironments:
        found = self.runtime.environments
        if not isinstance(found, DeploymentEnvironments):
            raise EnvironmentsUnavailable("environments are not built on this server")
        return found

    async def list_all(self, request: Request) -> Response:
        archived = _flag(request, "include_archived")
        found = await _thread(self.service().versions, None, archived)
        return _answer([e.to_dict() for e in found])

    async def create(self, request: Request) -> Response:
        body = await _body(request, "EnvironmentCreate")
        source = str(body.get("source") or "request body")
        data = dict(body["environment"])
        if isinstance(data.get("conda_file"), str):  # its content, never a path to read here
            data["conda_file"] = _conda_mapping(data["conda_file"], source)
        spec = environment_spec(data, source, None)
        created: RegisteredEnvironment = await _thread(self.service().create, spec)
        return _answer(created.to_dict(), 201)

    async def show(self, request: Request) -> Response:
        name = request.path_params["name"]
        version = request.query_params.get("version")
        label = request.query_params.get("label")
        found = await _thread(self.service().show, name, version, label)
        return _answer(found.to_dict())

    async def versions(self, request: Request) -> Response:
        found = await _thread(self.service().versions, request.path_params["name"],
                              _flag(request, "include_archived"))
        return _answer([e.to_dict() for e in found])

    async def archive(self, request: Request) -> Response:
        changed = await _thread(self.service().archive, request.path_params["name"],
                                request.query_params.get("version"))
        return _answer([e.to_dict() for e in changed])

    async def restore(self, request: Request) -> Response:
        changed = await _thread(self.service().restore, request.path_params["name"],
                                request.query_params.get("version"))
        return _answer([e.to_dict() for e in changed])

    async def build(self, request: Request) -> Response:
        body = await _body(request, "EnvironmentBuild")
        environments = self.environments()
        given = [name for name in ("environment", "conda_file", "deployment") if name in body]
        if len(given) != 1:
            raise ScoregateError("give one of 'environment' (a reference), 'conda_file' (its "
                                 "content) or 'deployment'")
        if "environment" in body:
            wanted = await _thread(environments.reference_request, body["environment"])
        elif "conda_file" in body:
            wanted = environments.conda_request(body["conda_file"], "conda_file")
        else:
            check_body("DeploymentCreate", body["deployment"])
            try:
                spec = DeploymentSpec.from_dict({"endpoint_name": "", **body["deployment"]})
                wanted = await _thread(environments.request_for, spec)
            except (TypeError, ValueError, OSError) as error:  # paths and shapes of a body
                raise ScoregateError(f"cannot read what 'deployment' runs in: {error}") from None
        status = await off_loop(environments.build_now, wanted)
        return _answer(status.to_dict())

    async def built(self, request: Request) -> Response:
        environments = self.environments()
        found = await _thread(gc.usage, environments.builder, environments.in_use)
        return _answer([_built_view(environments, entry) for entry in found])

    async def collect(self, request: Request) -> Response:
        body = await _body(request, "EnvironmentGc")
        environments = self.environments()
        grace_s = float(body.get("grace_hours", environments.grace_s / 3600)) * 3600
        removed = await off_loop(gc.collect, environments.builder, environments.in_use, grace_s)
        return _answer({"removed": removed})


def _conda_mapping(content: str, source: str) -> Any:
    try:
        data = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        raise ConfigError(source, "conda_file", f"not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(source, "conda_file", "a conda file is a mapping with 'dependencies'")
    return data


def _built_view(environments: DeploymentEnvironments,
                entry: gc.EnvironmentUsage) -> dict[str, Any]:
    found = environments.builder.find(entry.key)
    ready = dict(found.ready) if found else {}
    return {"key": entry.key, "path": str(entry.path), "size_bytes": entry.size_bytes,
            "in_use": entry.in_use, "last_used": entry.last_used,
            "python": ready.get("python"), "packages": len(ready.get("packages", [])),
            "requirements": ready.get("requirements", [])}


async def _thread(call: Callable[..., T], *args: Any) -> T:
    return await anyio.to_thread.run_sync(functools.partial(call, *args))


async def _body(request: Request, schema: str) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise ScoregateError(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ScoregateError("the request body must be a JSON object")
    check_body(schema, body)
    return body


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise ScoregateError(f"query parameter {name} must be true or false, got {value!r}")
    return value in ("true", "1")


def _answer(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status, media_type="application/json")
