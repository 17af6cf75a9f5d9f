"""The environments part of the admin API's OpenAPI document (merged into `openapi.PATHS` and
`openapi.SCHEMAS`); kept apart so `openapi.py` imports it without a cycle."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]
ENVIRONMENTS = "/v1/environments"
ENVIRONMENT = "/v1/environments/{name}"
BUILDS = "/v1/environment-builds"
BUILT = "/v1/built-environments"


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


_ANY: Schema = {"type": "object", "additionalProperties": True}
_VERSION_QUERY: Schema = {"name": "version", "in": "query", "required": False,
                          "description": "one version (default: all of them)",
                          "schema": {"type": "string"}}
_ARCHIVED_QUERY: Schema = {"name": "include_archived", "in": "query", "required": False,
                           "schema": {"type": "boolean", "default": False}}
_LABEL_QUERY: Schema = {"name": "label", "in": "query", "required": False,
                        "description": "`latest`: the highest version not archived",
                        "schema": {"type": "string", "enum": ["latest"]}}

SCHEMAS: dict[str, Schema] = {
    "EnvironmentCreate": {"type": "object", "additionalProperties": False,
                          "required": ["environment"], "properties": {
        "environment": {**_ANY, "description": "Azure's environment YAML as JSON (`name`, "
                        "`version`, `conda_file` given as the file's content, `image`, "
                        "`description`, `tags`)"},
        "source": {"type": "string", "description": "the YAML file's name, for messages"}}},
    "Environment": {"type": "object", "additionalProperties": True, "required": [
        "name", "version", "conda_file", "archived"], "properties": {
        "name": {"type": "string"}, "version": {"type": "string"},
        "conda_file": {"type": "string"}, "image": {"type": "string", "nullable": True},
        "description": {"type": "string"}, "tags": {"type": "object"},
        "archived": {"type": "boolean"}, "created_at": {"type": "number"},
        "not_applied": {**_ANY, "description": "kept, not applied here (image, build, ...)"}}},
    "EnvironmentBuild": {"type": "object", "additionalProperties": False, "properties": {
        "environment": {"type": "string", "description": "azureml:<name>:<version> or "
                                                         "azureml:<name>@latest"},
        "conda_file": {"type": "string", "description": "a conda file's content"},
        "deployment": {**_ANY, "description": "a DeploymentCreate body: what it would run "
                                              "(its environment, or its MLflow model's)"}}},
    "BuiltEnvironment": {"type": "object", "additionalProperties": True, "properties": {
        "key": {"type": "string"}, "path": {"type": "string"},
        "size_bytes": {"type": "integer"}, "in_use": {"type": "boolean"},
        "last_used": {"type": "number"}, "python": {"type": "string"},
        "packages": {"type": "integer"}, "requirements": {"type": "array"}}},
    "EnvironmentGc": {"type": "object", "additionalProperties": False, "properties": {
        "grace_hours": {"type": "number", "minimum": 0, "description": "remove environments "
                        "unused this long (default: serve's --environment-grace-hours; 0: "
                        "every unused one)"}}},
    "EnvironmentGcResult": {"type": "object", "additionalProperties": False,
                            "required": ["removed"], "properties": {
        "removed": {"type": "array", "items": {"type": "string"}}}},
}


def _op(op_id: str, summary: str, answer: str, *, status: str = "200", body: str | None = None,
        array: bool = False, query: tuple[Schema, ...] = (), errors: str = "401") -> Schema:
    content = _ref(answer)
    if array:
        content = {"type": "array", "items": content}
    responses: Schema = {status: {"description": summary,
                                  "content": {"application/json": {"schema": content}}}}
    for code in ("400", "500", *errors.split()):
        responses[code] = {"$ref": f"#/components/responses/E{code}"}
    operation: Schema = {"operationId": op_id, "summary": summary, "responses": responses}
    if query:
        operation["parameters"] = list(query)
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": _ref(body)}}}
    return operation


PATHS: dict[str, Schema] = {
    ENVIRONMENTS: {
        "get": _op("listEnvironments", "Registered environments (every version)",
                   "Environment", array=True, query=(_ARCHIVED_QUERY,)),
        "post": _op("createEnvironment", "Register an environment version (409 if it exists)",
                    "Environment", status="201", body="EnvironmentCreate",
                    errors="401 409"),
    },
    ENVIRONMENT: {
        "get": _op("showEnvironment", "One version of an environment (default @latest)",
                   "Environment", query=(_VERSION_QUERY, _LABEL_QUERY), errors="401 404"),
    },
    ENVIRONMENT + "/versions": {
        "get": _op("listEnvironmentVersions", "The versions of an environment", "Environment",
                   array=True, query=(_ARCHIVED_QUERY,), errors="401 404"),
    },
    ENVIRONMENT + "/archive": {
        "post": _op("archiveEnvironment", "Archive one version, or all", "Environment",
                    array=True, query=(_VERSION_QUERY,), errors="401 404"),
    },
    ENVIRONMENT + "/restore": {
        "post": _op("restoreEnvironment", "Restore one version, or all", "Environment",
                    array=True, query=(_VERSION_QUERY,), errors="401 404"),
    },
    BUILDS: {
        "post": _op("buildEnvironment", "Build an environment now, ahead of a deployment "
                    "(422 with uv's message when it cannot be built)", "EnvironmentStatus",
                    body="EnvironmentBuild", errors="401 404 422"),
    },
    BUILT: {
        "get": _op("listBuiltEnvironments", "Environments built on this machine, with their "
                   "disk use and whether a deployment uses them", "BuiltEnvironment",
                   array=True),
    },
    BUILT + "/gc": {
        "post": _op("collectEnvironments", "Remove built environments no deployment used "
                    "for the grace period", "EnvironmentGcResult", body="EnvironmentGc"),
    },
}
