"""The model registry's part of the admin API's OpenAPI document (merged into `openapi.PATHS`
and `openapi.SCHEMAS`); `models.py` serves these routes and `check_body` enforces the request
schemas. Field names are those of `az ml model show`; value rules (names, versions, types) are
the registry's, whose messages name the rule (`model-name`, `model-version`, ...)."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]
MODELS = "/v1/models"
MODEL = "/v1/models/{name}"
VERSIONS = "/v1/models/{name}/versions"
VERSION = "/v1/models/{name}/versions/{version}"
LABEL = "/v1/models/{name}/labels/{label}"
MODEL_TYPES = ["custom_model", "mlflow_model", "triton_model"]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


_STRINGS: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
_STRINGS_OR_NULL: Schema = {"type": "object", "additionalProperties": {
    "type": "string", "nullable": True}}
_CONTEXT: Schema = {"type": "object", "additionalProperties": False, "properties": {
    "created_at": {"type": "string", "format": "date-time"},
    "last_modified_at": {"type": "string", "format": "date-time"}}}

SCHEMAS: dict[str, Schema] = {
    "ModelCreate": {
        "type": "object", "additionalProperties": False, "required": ["path"],
        "description": "`path`: an absolute path on the server's machine, readable by the "
                       "server, which copies it (a file or a folder) into its state folder.",
        "properties": {
            "path": {"type": "string"},
            "version": {"type": "string", "nullable": True, "x-checked-by": "registry",
                        "description": "a whole number from 1 (text or number); left out: "
                                       "the highest version + 1"},
            "type": {"type": "string", "enum": MODEL_TYPES},
            "description": {"type": "string"},
            "tags": {"type": "object", "x-checked-by": "registry"},
            "properties": {"type": "object", "x-checked-by": "registry"},
            "stage": {"type": "string"},
        }},
    "ModelPatch": {
        "type": "object", "additionalProperties": False,
        "description": "What may change; the artifact never does. Tags merge (null removes).",
        "properties": {"description": {"type": "string"}, "tags": _STRINGS_OR_NULL,
                       "stage": {"type": "string"}}},
    "ModelDownload": {
        "type": "object", "additionalProperties": False, "required": ["download_path"],
        "properties": {"download_path": {
            "type": "string", "description": "absolute folder on the server's machine; the "
                                             "copy lands in <download_path>/<name>/"}}},
    "ModelVersion": {
        "type": "object", "additionalProperties": True,
        "required": ["id", "name", "version", "type", "path", "archived", "digest", "size"],
        "properties": {
            "id": {"type": "string", "description": "azureml:<name>:<version>"},
            "name": {"type": "string"}, "version": {"type": "string"},
            "type": {"type": "string", "enum": MODEL_TYPES},
            "path": {"type": "string", "description": "the stored, read-only artifact"},
            "description": {"type": "string"}, "tags": _STRINGS, "properties": _STRINGS,
            "stage": {"type": "string"}, "creation_context": _CONTEXT,
            "archived": {"type": "boolean"},
            "digest": {"type": "string", "description": "sha256 of the artifact tree"},
            "size": {"type": "integer", "description": "bytes of file content"},
            "etag": {"type": "string"}}},
    "ModelContainer": {
        "type": "object", "additionalProperties": True,
        "required": ["name", "latest_version", "archived"],
        "properties": {
            "name": {"type": "string"},
            "latest_version": {"type": "string", "nullable": True,
                               "description": "the highest version not archived"},
            "description": {"type": "string"}, "tags": _STRINGS, "creation_context": _CONTEXT,
            "archived": {"type": "boolean", "description": "every version is archived"},
            "versions": {"type": "integer"}}},
    "ModelDownloaded": {
        "type": "object", "additionalProperties": False, "required": ["path"],
        "properties": {"path": {"type": "string"}}},
}

_LIST_FLAGS: tuple[Schema, ...] = tuple(
    {"name": flag, "in": "query", "required": False, "description": text,
     "schema": {"type": "boolean", "default": False}}
    for flag, text in (("archived_only", "only archived ones"),
                       ("include_archived", "archived ones too")))


def _op(op_id: str, summary: str, answer: Schema, *, status: str = "200",
        body: str | None = None, errors: str = "401 404", if_match: bool = False,
        query: tuple[Schema, ...] = ()) -> Schema:
    responses: Schema = {status: {"description": summary,
                                  "content": {"application/json": {"schema": answer}}}}
    for code in ["400", "500", *errors.split()]:
        responses[code] = {"$ref": f"#/components/responses/E{code}"}
    operation: Schema = {"operationId": op_id, "summary": summary, "responses": responses}
    parameters: list[Schema] = list(query)
    if if_match:
        parameters.append({"$ref": "#/components/parameters/IfMatch"})
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {"required": True,
                                    "content": {"application/json": {"schema": _ref(body)}}}
    return operation


def _many(name: str) -> Schema:
    return {"type": "array", "items": _ref(name)}


PATHS: dict[str, Schema] = {
    MODELS: {"get": _op("listModels", "Each model name with its latest version", _many(
        "ModelContainer"), errors="401", query=_LIST_FLAGS)},
    MODEL: {"get": _op("showModelContainer", "One model name with its latest version",
                       _ref("ModelContainer"))},
    MODEL + "/archive": {"post": _op("archiveModel", "Archive every version of a model",
                                     _many("ModelVersion"))},
    MODEL + "/restore": {"post": _op("restoreModel", "Restore every version of a model",
                                     _many("ModelVersion"))},
    VERSIONS: {
        "get": _op("listModelVersions", "The versions of a model, highest first",
                   _many("ModelVersion"), query=_LIST_FLAGS),
        "post": _op("createModelVersion", "Register a file or folder as a new version (409 "
                    "if the version given exists)", _ref("ModelVersion"), status="201",
                    body="ModelCreate", errors="401 409"),
    },
    VERSION: {
        "get": _op("showModelVersion", "One version (archived ones too)", _ref("ModelVersion")),
        "patch": _op("updateModelVersion", "Change description, tags or stage",
                     _ref("ModelVersion"), body="ModelPatch", if_match=True,
                     errors="401 404 412"),
        "delete": _op("deleteModelVersion", "Delete a version no deployment uses (409 "
                      "otherwise: archive it instead)", _ref("WriteResult"), if_match=True,
                      errors="401 404 409 412"),
    },
    VERSION + "/archive": {"post": _op("archiveModelVersion", "Hide a version from @latest and "
                                       "from lists", _ref("ModelVersion"), if_match=True,
                                       errors="401 404 412")},
    VERSION + "/restore": {"post": _op("restoreModelVersion", "Undo archive",
                                       _ref("ModelVersion"), if_match=True,
                                       errors="401 404 412")},
    VERSION + "/download": {"post": _op("downloadModelVersion", "Write a writable copy on the "
                                        "server's machine", _ref("ModelDownloaded"),
                                        body="ModelDownload", errors="401 404 409")},
    LABEL: {"get": _op("showModelLabel", "The version a label names (latest: the highest "
                       "version not archived)", _ref("ModelVersion"))},
}
PATH_PARAMETERS = ("name", "version", "label")
