"""Admin API routes of the model registry (`az ml model`): create, list, show, update, archive,
restore, delete, download, and what a label names.

The admin API knows the registry only as a `ModelService` (the registry is one; `serve` hands
it over through the runtime), and its answers only as `ModelRecordView`s: anything with a
`to_dict()` and an ETag. Every call does file or SQLite work, so it runs in a worker thread:
copying a large model never stalls the scoring listener sharing this event loop. Paths in
bodies are paths on the server's machine (the CLI runs there and sends absolute ones).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio.to_thread
import orjson
from starlette.requests import Request
from starlette.responses import Response

from control_plane.admin.model_doc import LABEL, MODEL, MODELS, VERSION, VERSIONS
from control_plane.admin.openapi import json_body
from control_plane.errors import ScoregateError, echo
from control_plane.specs.resources import DeploymentSpec

Handler = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")


class ModelView(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


class ModelRecordView(Protocol):
    """A stored version and its ETag (the registry's `Record[ModelVersion]` is one)."""

    @property
    def spec(self) -> ModelView: ...
    @property
    def etag(self) -> str: ...


class ModelService(Protocol):
    """What the admin API asks of the model registry (`registry.ModelRegistry` is one)."""

    def create(self, name: str, path: Path | str, *, version: int | str | None = None,
               type: str = ..., description: str = "",
               tags: Mapping[str, object] | None = None,
               properties: Mapping[str, object] | None = None,
               stage: str = ...) -> ModelRecordView: ...
    def update(self, name: str, version: int | str, *, description: str | None = None,
               tags: Mapping[str, object] | None = None, stage: str | None = None,
               if_match: str | None = None) -> ModelRecordView: ...
    def archive(self, name: str, version: int | str | None = None,
                if_match: str | None = None) -> Sequence[ModelRecordView]: ...
    def restore(self, name: str, version: int | str | None = None,
                if_match: str | None = None) -> Sequence[ModelRecordView]: ...
    def delete(self, name: str, version: int | str, if_match: str | None = None) -> None: ...
    def list(self, name: str | None = None, *, archived_only: bool = False,
             include_archived: bool = False) -> Sequence[ModelRecordView]: ...
    def containers(self, *, archived_only: bool = False,
                   include_archived: bool = False) -> Sequence[ModelView]: ...
    def container(self, name: str) -> ModelView: ...
    def show(self, name: str, version: int | str | None = None,
             label: str | None = None) -> ModelRecordView: ...
    def download(self, name: str, version: int | str, destination: Path | str) -> Path: ...
    def bind(self, spec: DeploymentSpec) -> DeploymentSpec:
        """The deployment with its `model_ref` resolved to one registered version."""
        ...


class ModelsUnavailable(ScoregateError):
    status = 503


def model_handlers(service: Callable[[], ModelService | None],
                   if_match: Callable[[Request], str | None]) -> dict[str, dict[str, Handler]]:
    """The handlers keyed like `openapi.PATHS`; `if_match` reads the If-Match header as the
    other routes do."""
    routes = _ModelRoutes(service, if_match)
    return {
        MODELS: {"get": routes.list_containers},
        MODEL: {"get": routes.show_container},
        MODEL + "/archive": {"post": routes.archive_all},
        MODEL + "/restore": {"post": routes.restore_all},
        VERSIONS: {"get": routes.list_versions, "post": routes.create},
        VERSION: {"get": routes.show, "patch": routes.update, "delete": routes.delete},
        VERSION + "/archive": {"post": routes.archive},
        VERSION + "/restore": {"post": routes.restore},
        VERSION + "/download": {"post": routes.download},
        LABEL: {"get": routes.show_label},
    }


class _ModelRoutes:
    def __init__(self, service: Callable[[], ModelService | None],
                 if_match: Callable[[Request], str | None]) -> None:
        self._service = service
        self._if_match = if_match

    def registry(self) -> ModelService:
        found = self._service()
        if found is None:
            raise ModelsUnavailable("the model registry is not running on this server yet")
        return found

    async def list_containers(self, request: Request) -> Response:
        flags = _list_flags(request)
        found = await _thread(self.registry().containers, **flags)
        return _json([item.to_dict() for item in found])

    async def show_container(self, request: Request) -> Response:
        found = await _thread(self.registry().container, request.path_params["name"])
        return _json(found.to_dict())

    async def list_versions(self, request: Request) -> Response:
        found = await _thread(self.registry().list, request.path_params["name"],
                              **_list_flags(request))
        return _json([_view(record) for record in found])

    async def create(self, request: Request) -> Response:
        body = await json_body(request, "ModelCreate")
        path = body.pop("path")
        if not os.path.isabs(path):
            raise ScoregateError(f"path must be an absolute path on the server's machine, got "
                                 f"{echo(path)} (the CLI makes relative paths absolute)")
        record = await _thread(self.registry().create, request.path_params["name"], path,
                               **body)
        return _answer(record, 201)

    async def show(self, request: Request) -> Response:
        name, version = _key(request)
        return _answer(await _thread(self.registry().show, name, version=version))

    async def show_label(self, request: Request) -> Response:
        name, label = request.path_params["name"], request.path_params["label"]
        return _answer(await _thread(self.registry().show, name, label=label))

    async def update(self, request: Request) -> Response:
        name, version = _key(request)
        patch = await json_body(request, "ModelPatch")
        registry = self.registry()
        if_match = self._if_match(request)
        if isinstance(patch.get("tags"), dict):  # merge, as the other PATCH routes do
            current = await _thread(registry.show, name, version=version)
            tags = {**current.spec.to_dict()["tags"], **patch["tags"]}
            patch["tags"] = {k: v for k, v in tags.items() if v is not None}
            if_match = if_match or current.etag  # a change in between: 412, never a lost tag
        record = await _thread(registry.update, name, version, if_match=if_match, **patch)
        return _answer(record)

    async def delete(self, request: Request) -> Response:
        name, version = _key(request)
        await _thread(self.registry().delete, name, version, if_match=self._if_match(request))
        return _json({"message": f"deleted model {name} version {version}"})

    async def archive(self, request: Request) -> Response:
        return await self._set_archived(request, self.registry().archive)

    async def restore(self, request: Request) -> Response:
        return await self._set_archived(request, self.registry().restore)

    async def _set_archived(self, request: Request,
                            change: Callable[..., Sequence[ModelRecordView]]) -> Response:
        name, version = _key(request)
        found = await _thread(change, name, version, if_match=self._if_match(request))
        return _answer(found[0])

    async def archive_all(self, request: Request) -> Response:
        found = await _thread(self.registry().archive, request.path_params["name"])
        return _json([_view(record) for record in found])

    async def restore_all(self, request: Request) -> Response:
        found = await _thread(self.registry().restore, request.path_params["name"])
        return _json([_view(record) for record in found])

    async def download(self, request: Request) -> Response:
        name, version = _key(request)
        destination = (await json_body(request, "ModelDownload"))["download_path"]
        if not os.path.isabs(destination):
            raise ScoregateError(f"download_path must be an absolute path on the server's "
                                 f"machine, got {echo(destination)}")
        written = await _thread(self.registry().download, name, version, destination)
        return _json({"path": str(written)})


async def _thread(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await anyio.to_thread.run_sync(functools.partial(call, *args, **kwargs))


def _key(request: Request) -> tuple[str, str]:
    return request.path_params["name"], request.path_params["version"]


def _list_flags(request: Request) -> dict[str, bool]:
    return {name: _flag(request.query_params.get(name), name)
            for name in ("archived_only", "include_archived")}


def _flag(value: str | None, name: str) -> bool:
    if value is None or value.lower() in ("false", "0", ""):
        return False
    if value.lower() in ("true", "1"):
        return True
    raise ScoregateError(f"query parameter {name} must be true or false, got {echo(value)}")



def _view(record: ModelRecordView) -> dict[str, Any]:
    return {**record.spec.to_dict(), "etag": record.etag}


def _answer(record: ModelRecordView, status: int = 200) -> Response:
    return _json(_view(record), status, etag=record.etag)


def _json(content: Any, status: int = 200, etag: str | None = None) -> Response:
    headers = {"ETag": f'"{etag}"'} if etag is not None else None
    return Response(orjson.dumps(content), status, headers, media_type="application/json")
