"""`GET /swagger.json?version=2|3|3.1`, as azmlinfsrv serves it.

Per version: the code folder's own file when there is one (version 2: `swagger.json` or
`swagger2.json`; 3: `swagger3.json`; 3.1: `swagger3.1.json`), else a document generated like
azmlinfsrv's (same paths, operations and texts), whose `ServiceInput` / `ServiceOutput` schemas
come from inference_schema's decorators on run() when it has them (free-form objects
otherwise). A decorated run() whose parameter types cannot be described in a version (e.g.
swagger 2 and mixed-type arrays) has no document for it, as in azmlinfsrv. Documents are built
and serialised once at start.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scoring_servers.azureml.errors import ScriptError
from scoring_servers.azureml.run_signature import SCHEMA_UTIL, is_schema_decorated

# version alias → canonical version
VERSIONS: Mapping[str, str] = {"2": "2", "2.0": "2", "3": "3", "3.0": "3", "3.1": "3.1"}
DEFAULT_VERSION = "2"
_FILES: Mapping[str, tuple[str, ...]] = {
    "2": ("swagger.json", "swagger2.json"),
    "3": ("swagger3.json",),
    "3.1": ("swagger3.1.json",),
}
# canonical version → how inference_schema names it in get_supported_versions()
_SCHEMA_NAMES: Mapping[str, tuple[str, ...]] = {"2": ("2", "2.0"), "3": ("3", "3.0"),
                                                "3.1": ("3.1",)}


@dataclass(frozen=True)
class Service:
    name: str = "ML service"
    version: str = "1.0"
    path_prefix: str = ""


@dataclass(frozen=True)
class SwaggerDocuments:
    """Serialised documents by canonical version (absent: not available for this script)."""

    documents: Mapping[str, bytes]

    def get(self, version: str | None) -> bytes | str:
        """The document for a `?version=` value, or azmlinfsrv's error message."""
        version = DEFAULT_VERSION if version is None else version
        supported = ", ".join(sorted(self.documents))
        canonical = VERSIONS.get(version)
        if canonical is None:
            return f"Swagger version [{version}] is not valid. Supported versions: [{supported}]."
        document = self.documents.get(canonical)
        if document is None:
            return (f"Swagger version [{version}] is not supported for the scoring script. "
                    f"Supported swagger versions: [{supported}].")
        return document


def load_swagger(code_dir: Path, run: Callable[..., Any], service: Service) -> SwaggerDocuments:
    documents = {}
    schemas = _run_schemas(run)
    for version, names in _FILES.items():
        document = _read_first(code_dir, names)
        if document is None and schemas is not None and _supports(run, version):
            document = generated_document(version, service, *schemas)
        if document is not None:
            documents[version] = json.dumps(document).encode()
    return SwaggerDocuments(documents)


def _run_schemas(run: Callable[..., Any]) -> tuple[Any, Any] | None:
    """(input schema, output schema) from inference_schema, or free-form objects."""
    if not is_schema_decorated(run):
        return {"type": "object", "example": {}}, {"type": "object", "example": {}}
    schema_util = sys.modules[SCHEMA_UTIL]
    return schema_util.get_input_schema(run), schema_util.get_output_schema(run)


def _supports(run: Callable[..., Any], version: str) -> bool:
    if not is_schema_decorated(run):
        return True
    supported = set(sys.modules[SCHEMA_UTIL].get_supported_versions(run))
    return any(name in supported for name in _SCHEMA_NAMES[version])


def _read_first(code_dir: Path, names: tuple[str, ...]) -> Any:
    for name in names:
        path = code_dir / name
        if path.is_file():
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, OSError) as exc:
                raise ScriptError(f"{path} is not a readable JSON document: {exc}") from exc
    return None


_HEALTH_DESCRIPTION = "Simple health check endpoint to ensure the service is up at any given point."
_HEALTHY = ("If service is up and running, this response will be returned with the content "
            "'Healthy'")
_FAILED = "The service failed to execute due to an error."
_SCORE_DESCRIPTION = "Run web service's model and get the prediction output"
_INPUT_DESCRIPTION = "The input payload for executing the real-time machine learning service."
_OUTPUT_DESCRIPTION = ("The service processed the input correctly and provided a result "
                       "prediction, if applicable.")
_BEARER = {"type": "apiKey", "name": "Authorization", "in": "header",
           "description": "For example: Bearer abc123"}
_ERROR_RESPONSE = {"type": "object", "properties": {"message": {"type": "string"}}}


def generated_document(version: str, service: Service, input_schema: Any,
                       output_schema: Any) -> dict[str, Any]:
    """azmlinfsrv's swagger2/swagger3 template, filled in."""
    prefix = f"/{service.path_prefix.strip('/')}" if service.path_prefix else ""
    info = {"title": service.name,
            "description": "API specification for the Azure Machine Learning service "
                           f"{service.name}",
            "version": service.version}
    if version == "2":
        return _swagger2(info, prefix, input_schema, output_schema)
    document = _openapi3(info, prefix, input_schema, output_schema)
    if version == "3.1":
        document["openapi"] = "3.1.0"
    return document


def _swagger2(info: dict[str, Any], prefix: str, input_schema: Any,
              output_schema: Any) -> dict[str, Any]:
    error = {"description": _FAILED, "schema": {"$ref": "#/definitions/ErrorResponse"}}
    return {
        "swagger": "2.0", "info": info, "schemes": ["https"],
        "consumes": ["application/json"], "produces": ["application/json"],
        "securityDefinitions": {"Bearer": _BEARER},
        "paths": {
            f"{prefix}/": {"get": {
                "operationId": "ServiceHealthCheck", "description": _HEALTH_DESCRIPTION,
                "responses": {"200": {"description": _HEALTHY, "schema": {"type": "string"},
                                      "examples": {"application/json": "Healthy"}},
                              "default": error}}},
            f"{prefix}/score": {"post": {
                "operationId": "RunMLService", "description": _SCORE_DESCRIPTION,
                "security": [{"Bearer": []}],
                "parameters": [{"name": "serviceInputPayload", "in": "body",
                                "description": _INPUT_DESCRIPTION,
                                "schema": {"$ref": "#/definitions/ServiceInput"}}],
                "responses": {"200": {"description": _OUTPUT_DESCRIPTION,
                                      "schema": {"$ref": "#/definitions/ServiceOutput"}},
                              "default": error}}},
            f"{prefix}/swagger.json": {"get": {
                "operationId": "GetSwaggerSpec", "description": "Get the Swagger specification.",
                "parameters": [{"name": "version", "in": "query", "required": False,
                                "type": "integer", "enum": [2, 3]}],
                "responses": {"200": {"description": "The Swagger specification.",
                                      "schema": {"type": "string"}},
                              "default": error}}},
        },
        "definitions": {"ServiceInput": input_schema, "ServiceOutput": output_schema,
                        "ErrorResponse": _ERROR_RESPONSE},
    }


def _openapi3(info: dict[str, Any], prefix: str, input_schema: Any,
              output_schema: Any) -> dict[str, Any]:
    def json_content(ref: str) -> dict[str, Any]:
        return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}

    error = {"description": _FAILED, "content": json_content("ErrorResponse")}
    return {
        "openapi": "3.0.3", "info": info, "security": [{"Bearer": []}],
        "paths": {
            f"{prefix}/": {"get": {
                "operationId": "ServiceHealthCheck", "description": _HEALTH_DESCRIPTION,
                "responses": {"200": {"description": _HEALTHY, "content": {"text/plain": {
                    "schema": {"type": "string", "example": "Healthy"}}}},
                    "default": error}}},
            f"{prefix}/score": {"post": {
                "operationId": "RunMLService", "description": _SCORE_DESCRIPTION,
                "security": [{"Bearer": []}],
                "requestBody": {"description": _INPUT_DESCRIPTION,
                                "content": json_content("ServiceInput")},
                "responses": {"200": {"description": _OUTPUT_DESCRIPTION,
                                      "content": json_content("ServiceOutput")},
                              "default": error}}},
            f"{prefix}/swagger.json": {"get": {
                "operationId": "GetSwaggerSpec", "description": "Get the Swagger specification.",
                "parameters": [{"name": "version", "in": "query", "required": False,
                                "schema": {"type": "integer", "enum": [2, 3]}}],
                "responses": {"200": {"description": "The Swagger specification.",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}},
                              "default": error}}},
        },
        "components": {
            "schemas": {"ServiceInput": input_schema, "ServiceOutput": output_schema,
                        "ErrorResponse": _ERROR_RESPONSE},
            "securitySchemes": {"Bearer": _BEARER},
        },
    }
