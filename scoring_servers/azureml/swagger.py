"""`GET /swagger.json?version=2|3|3.1`: the code folder's own document, else a minimal one.

Files are looked up as azureml-inference-server-http does: version 2 reads `swagger2.json`
(or `swagger.json`), 3 reads `swagger3.json`, 3.1 reads `swagger3.1.json`. They are read once
at start: the code folder does not change under a running instance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from scoring_servers.azureml.errors import ScriptError

# version alias → canonical version
VERSIONS: Mapping[str, str] = {"2": "2", "2.0": "2", "3": "3", "3.0": "3", "3.1": "3.1"}
DEFAULT_VERSION = "2"
_FILES: Mapping[str, tuple[str, ...]] = {
    "2": ("swagger2.json", "swagger.json"),
    "3": ("swagger3.json",),
    "3.1": ("swagger3.1.json",),
}


@dataclass(frozen=True)
class SwaggerDocuments:
    """Serialised documents by canonical version."""

    documents: Mapping[str, bytes]

    def get(self, version: str | None) -> bytes | None:
        """The document for a `?version=` value, or None when the version is unknown."""
        canonical = VERSIONS.get(version or DEFAULT_VERSION)
        return None if canonical is None else self.documents[canonical]


def load_swagger(code_dir: Path, title: str) -> SwaggerDocuments:
    documents = {}
    for version, names in _FILES.items():
        document = _read_first(code_dir, names)
        documents[version] = json.dumps(document if document is not None
                                        else minimal_document(version, title)).encode()
    return SwaggerDocuments(documents)


def _read_first(code_dir: Path, names: tuple[str, ...]) -> Any:
    for name in names:
        path = code_dir / name
        if path.is_file():
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, OSError) as exc:
                raise ScriptError(f"{path} is not a readable JSON document: {exc}") from exc
    return None


def minimal_document(version: str, title: str) -> dict[str, Any]:
    """Health and score operations with free-form JSON in and out (run() takes any body)."""
    any_json: dict[str, Any] = {"type": "object"}
    info = {"title": title, "version": "1.0",
            "description": "Azure ML scoring script served by scoregate"}
    health = {"operationId": "ServiceHealthCheck", "description": "Answers Healthy once init() has run."}
    score = {"operationId": "RunMLService", "description": "Calls run() with the request body."}
    if version == "2":
        return {
            "swagger": "2.0", "info": info, "schemes": ["http"],
            "consumes": ["application/json"], "produces": ["application/json"],
            "paths": {
                "/": {"get": {**health, "responses": {"200": {"description": "Healthy"}}}},
                "/score": {"post": {
                    **score,
                    "parameters": [{"name": "body", "in": "body", "required": True, "schema": any_json}],
                    "responses": {"200": {"description": "run()'s result", "schema": any_json}},
                }},
            },
        }
    json_content = {"application/json": {"schema": any_json}}
    return {
        "openapi": "3.1.0" if version == "3.1" else "3.0.3", "info": info,
        "paths": {
            "/": {"get": {**health, "responses": {"200": {
                "description": "Healthy", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/score": {"post": {
                **score,
                "requestBody": {"required": True, "content": json_content},
                "responses": {"200": {"description": "run()'s result", "content": json_content}},
            }},
        },
    }
