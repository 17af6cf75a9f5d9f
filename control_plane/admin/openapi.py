"""The admin API's OpenAPI 3 document, and the body checks that use the same schemas
(`json_body` reads a request's body and checks it).

One source for both: the request schemas served at `/openapi.json` are the ones
`check_body` enforces, so the document cannot drift from what the server accepts. Azure ML's
own rules (names, traffic totals, ...) stay in `validation.py`; these checks only catch the
wrong shapes (unknown keys, wrong JSON types) with a message that names the field; enums,
bounds and patterns are documented here but enforced by `validation.py` and the store, whose
messages name the rule (`auth-mode`, `instance-count`, `key-type`, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson
from starlette.requests import Request

from control_plane.admin.autodeploy_doc import PATHS as AUTODEPLOY_PATHS
from control_plane.admin.autodeploy_doc import SCHEMAS as AUTODEPLOY_SCHEMAS
from control_plane.admin.environment_doc import PATHS as ENVIRONMENT_PATHS
from control_plane.admin.environment_doc import SCHEMAS as ENVIRONMENT_SCHEMAS
from control_plane.admin.events_doc import PATHS as EVENT_PATHS
from control_plane.admin.events_doc import SCHEMAS as EVENT_SCHEMAS
from control_plane.admin.model_doc import PATH_PARAMETERS as MODEL_PATH_PARAMETERS
from control_plane.admin.model_doc import PATHS as MODEL_PATHS
from control_plane.admin.model_doc import SCHEMAS as MODEL_SCHEMAS
from control_plane.admin.rollout_doc import PATHS as ROLLOUT_PATHS
from control_plane.admin.rollout_doc import SCHEMAS as ROLLOUT_SCHEMAS
from control_plane.errors import ScoregateError
from control_plane.specs.resources import AUTH_MODES, MODEL_TYPES, SCALE_TYPES
from control_plane.specs.validation import (
    BATCHING_BOUNDS,
    MAX_REQUEST_TIMEOUT_MS,
    PROBE_LOWEST,
    SCALE_BOUNDS,
)

Schema = dict[str, Any]

_NAME: Schema = {"type": "string", "minLength": 3, "maxLength": 32,
                 "pattern": "^[A-Za-z](-?[A-Za-z0-9])*$"}
# Percent maps are checked by validation.py (rule `traffic-integers`), not by `check_body`.
_PERCENTS: Schema = {"type": "object", "x-checked-by": "validation", "additionalProperties": {
    "type": "integer", "minimum": 0, "maximum": 100}}
_STRINGS: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
_STRINGS_OR_NULL: Schema = {"type": "object", "additionalProperties": {
    "type": "string", "nullable": True}}
_ANY_OBJECT: Schema = {"type": "object", "additionalProperties": True}
_PATH: Schema = {"type": "string", "nullable": True}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _ints(names: Mapping[str, int]) -> Schema:
    """An object of integer settings, each with its lowest value; none required."""
    return {"type": "object", "additionalProperties": False, "properties": {
        name: {"type": "integer", "minimum": lowest} for name, lowest in names.items()}}


_REQUEST_SETTINGS = _ints({"request_timeout_ms": 1, "max_concurrent_requests_per_instance": 1})
_REQUEST_SETTINGS["properties"]["request_timeout_ms"]["maximum"] = MAX_REQUEST_TIMEOUT_MS
_PROBE = _ints(PROBE_LOWEST)
_BATCHING: Schema = {**_ints({name: low for name, (low, _) in BATCHING_BOUNDS.items()}),
                     "nullable": True, "description": "null: batching off (docs/batching.md)"}
for _name, (_, _highest) in BATCHING_BOUNDS.items():
    _BATCHING["properties"][_name]["maximum"] = _highest
_SCALE: Schema = {**_ints({name: low for name, (low, _) in SCALE_BOUNDS.items()}),
                  "nullable": True, "description": "null or type default: a fixed "
                  "instance_count; type target_utilization: autoscaled (docs/autoscaling.md)"}
_SCALE["properties"]["type"] = {"type": "string", "enum": list(SCALE_TYPES)}
for _name, (_, _highest) in SCALE_BOUNDS.items():
    _SCALE["properties"][_name]["maximum"] = _highest

_COUNT_OR_PERCENT: Schema = {"description": "a whole number of instances (2) or a percent of "
                                            "instance_count (\"25%\")"}
_ROLLING_UPDATE: Schema = {
    "type": "object", "additionalProperties": False,
    "description": "how an update that replaces instances rolls (docs/rolling-updates.md)",
    "properties": {
        "max_surge": _COUNT_OR_PERCENT, "max_unavailable": _COUNT_OR_PERCENT,
        "bake_s": {"type": "number", "minimum": 0, "maximum": 3600},
        "max_error_rate": {"type": "number", "minimum": 0, "maximum": 1, "nullable": True},
        "max_latency_factor": {"type": "number", "minimum": 1, "nullable": True},
        "min_requests": {"type": "integer", "minimum": 0},
    }}

_ENDPOINT_FIELDS: Schema = {
    "auth_mode": {"type": "string", "enum": list(AUTH_MODES)},
    "traffic": _PERCENTS,
    "mirror_traffic": _PERCENTS,
    "description": {"type": "string"},
    "tags": _STRINGS,
}
_DEPLOYMENT_FIELDS: Schema = {
    "model_path": _PATH,
    "model_ref": {"type": "string", "nullable": True, "description": (
        "in answers: the registered version served, azureml:<name>:<version>. In requests: a "
        "reference resolved now (azureml:<name>:<version>, azureml:<name>@latest, without "
        "azureml: too) or, with model_path, the name[:version] an inline model registers as")},
    "model_type": {"type": "string", "nullable": True,
                   "enum": list(MODEL_TYPES)},
    "code_dir": _PATH,
    "scoring_script": _PATH,
    "environment_variables": _STRINGS,
    "instance_count": {"type": "integer", "minimum": 1},
    "request_settings": _REQUEST_SETTINGS,
    "liveness_probe": _PROBE,
    "readiness_probe": _PROBE,
    "urls": {"type": "array", "items": {"type": "string"}},
    "description": {"type": "string"},
    "tags": _STRINGS,
    "environment": {"nullable": True},
    "batching": _BATCHING,
    "scale_settings": _SCALE,
    "rolling_update": _ROLLING_UPDATE,
}
_STATUS_FIELDS: Schema = {
    "etag": {"type": "string"},
    "provisioning_state": {"type": "string", "enum": [
        "Creating", "Updating", "Succeeded", "Failed", "Deleting"]},
    "snapshot_version": {"type": "integer", "description": "only in answers to writes"},
    "effective_at": {"type": "string", "format": "date-time",
                     "description": "only in answers to writes: when the data plane took it"},
}


def _object(properties: Schema, required: tuple[str, ...] = (), extra: bool = False) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": extra}
    if required:
        schema["required"] = list(required)
    return schema


SCHEMAS: dict[str, Schema] = {
    "Error": _object({"message": {"type": "string"},
                      "rule": {"type": "string", "description": "the Azure ML rule broken"}},
                     ("message",)),
    "EndpointCreate": _object({"name": _NAME, **_ENDPOINT_FIELDS, "not_applied": _ANY_OBJECT,
                               "local": {"type": "boolean", "description": (
                                   "as `--local`: requests need no key (refused unless the "
                                   "scoring listener is bound to loopback)")}},
                              ("name",)),
    "EndpointPatch": _object({**_ENDPOINT_FIELDS, "tags": _STRINGS_OR_NULL}),
    "Endpoint": _object({
        "name": {"type": "string"}, **_ENDPOINT_FIELDS, "not_applied": _ANY_OBJECT,
        "scoring_uri": {"type": "string"}, "swagger_uri": {"type": "string"},
        "openapi_uri": {"type": "string"},
        "local": {"type": "boolean"},
        "auth_mode": {"type": "string", "enum": [*AUTH_MODES, "none"],
                      "description": "none: a --local endpoint on a loopback listener"},
        "auto_deploy": {"type": "object", "nullable": True, "additionalProperties": True,
                        "description": "its auto-deploy policy (show only; docs/autodeploy.md)"},
        **_STATUS_FIELDS,
    }, ("name", "auth_mode", "traffic", "mirror_traffic", "scoring_uri", "swagger_uri",
        "provisioning_state", "description", "tags", "etag"), extra=True),
    "DeploymentCreate": {**_object({"name": _NAME, "endpoint_name": _NAME, **_DEPLOYMENT_FIELDS,
                                    "not_applied": _ANY_OBJECT}, ("name",)),
                         "description": "Either code_dir + scoring_script (absolute paths that "
                                        "exist) or urls of external scoring servers, not both; "
                                        "neither for an mlflow_model (model_path holding "
                                        "MLmodel), which scoregate serves itself."},
    "DeploymentPatch": _object({**_DEPLOYMENT_FIELDS, "environment_variables": _STRINGS_OR_NULL,
                                "tags": _STRINGS_OR_NULL}),
    "Instance": _object({
        "id": {"type": "string"}, "url": {"type": "string", "nullable": True},
        "state": {"type": "string"}, "restarts": {"type": "integer"},
        "pid": {"type": "integer", "nullable": True},
        "last_error": {"type": "string", "nullable": True},
        "last_exit_reason": {"type": "string", "nullable": True,
                             "description": "why the last process ended: OOMKilled, "
                                            "InitFailed, LivenessProbeFailed or Error"},
        "memory_limit_mb": {"type": "integer", "nullable": True},
    }, ("id", "state"), extra=True),
    "Deployment": _object({
        "name": {"type": "string"}, "endpoint_name": {"type": "string"}, **_DEPLOYMENT_FIELDS,
        "not_applied": _ANY_OBJECT,
        "instances": {"type": "array", "items": _ref("Instance")},
        "provisioning_message": {"type": "string", "description": "why it Failed (with the "
                                 "instance log's last lines), or a note on its success"},
        "scale_status": {"type": "object", "additionalProperties": True, "description": (
            "autoscaled deployments only: desired_instances and the last decisions (time, "
            "utilization_percentage, old_instances, new_instances, reason, message)")},
        "rolling_update_status": _object({
            "batch": {"type": "integer"}, "batches": {"type": "integer"},
            "state": {"type": "string", "enum": ["rolling", "baking", "succeeded",
                                                 "rolled_back"]},
            "new_instances": {"type": "integer"}, "message": {"type": "string"},
        }, extra=True),
        "environment_status": {**_ref("EnvironmentStatus"), "nullable": True},
        **_STATUS_FIELDS,
    }, ("name", "endpoint_name", "instance_count", "provisioning_state", "instances", "etag"),
        extra=True),
    "EnvironmentStatus": _object({
        "state": {"type": "string", "enum": ["gateway", "building", "ready", "failed"]},
        "source": {"type": "string", "description": "the conda file, registered environment "
                                                    "or MLflow model file it was built from"},
        "key": {"type": "string"}, "python": {"type": "string"},
        "interpreter": {"type": "string"},
        "note": {"type": "string", "description": "e.g. a newer Python stood in"},
        "message": {"type": "string", "description": "why the build failed (uv's words)"},
        "phase": {"type": "string"}, "packages": {"type": "integer"},
        "detail": {"type": "string"}, "started_at": {"type": "number"},
        "took_s": {"type": "number"}, "log": {"type": "string"},
    }, ("state", "source")),
    "Percents": _PERCENTS,
    "Logs": _object({"logs": {"type": "string"}}, ("logs",)),
    "Comparison": {**_object({
        "endpoint": {"type": "string"}, "deployment": {"type": "string"},
        "counts": _object({o: {"type": "integer"} for o in
                           ("match", "mismatch", "shadow_error", "incomparable")}),
        "compared": {"type": "integer"}, "skipped": {"type": "integer"},
        "agreement_rate": {"type": "number", "nullable": True,
                           "description": "match / (match + mismatch + shadow_error)"},
        "memory_bytes": {"type": "integer"}, "memory_limit_bytes": {"type": "integer"},
        "sample_percent": {"type": "number"}, "rel_tolerance": {"type": "number"},
        "abs_tolerance": {"type": "number"}, "max_body_bytes": {"type": "integer"},
        "keep_mismatches": {"type": "integer"},
        "last_mismatches": {"type": "array", "items": _ANY_OBJECT},
    }, ("endpoint", "deployment", "counts", "agreement_rate", "memory_bytes",
        "last_mismatches"), extra=True),
        "description": "Mirror copies to this deployment whose answer was compared with the "
                       "live one since the server started (gateway/shadow/rules.py has the "
                       "rules)."},
    "KeyType": _object({"key_type": {"type": "string", "enum": ["primary", "secondary"]}},
                       ("key_type",)),
    "Keys": _object({"primaryKey": {"type": "string"}, "secondaryKey": {"type": "string"}},
                    ("primaryKey", "secondaryKey")),
    "Token": _object({"accessToken": {"type": "string"}, "tokenType": {"type": "string"},
                      "expiryTimeUtc": {"type": "integer"},
                      "refreshAfterTimeUtc": {"type": "integer"}},
                     ("accessToken", "expiryTimeUtc", "refreshAfterTimeUtc")),
    "WriteResult": _object({
        "message": {"type": "string"}, "snapshot_version": {"type": "integer"},
        "effective_at": {"type": "string", "format": "date-time"},
    }, ("message", "snapshot_version", "effective_at")),
    **ROLLOUT_SCHEMAS,
    **MODEL_SCHEMAS,
    **EVENT_SCHEMAS,
    **AUTODEPLOY_SCHEMAS,
    **ENVIRONMENT_SCHEMAS,
}


class BodyError(ScoregateError):
    """A request body of the wrong shape (400); says which field and what was expected."""


def check_body(schema_name: str, body: Any) -> None:
    """Raise `BodyError` unless `body` fits the named request schema."""
    _check(SCHEMAS[schema_name], body, "")


async def json_body(request: Request, schema_name: str, required: bool = True) -> dict[str, Any]:
    """The request's JSON object body, checked against the named request schema (`{}` for an
    empty body unless `required`)."""
    raw = await request.body()
    if not raw.strip():
        if required:
            raise ScoregateError("this request needs a JSON body")
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ScoregateError(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ScoregateError(f"the request body must be a JSON object, got {type(body).__name__}")
    check_body(schema_name, body)
    return body


def _check(schema: Schema, value: Any, path: str) -> None:
    where = _where(path)
    if value is None:
        if schema.get("nullable"):
            return
        if "type" in schema:  # even where another module checks the value: it expects one
            raise BodyError(f"{where} must not be null")
    if "x-checked-by" in schema:
        return
    kind = schema.get("type")
    if kind is not None and not _TYPE_CHECKS[kind](value):
        raise BodyError(f"{where} must be {_ARTICLE[kind]}, got {type(value).__name__}")
    if kind == "object":
        _check_object(schema, value, path)
    elif kind == "array":
        for index, item in enumerate(value):
            _check(schema["items"], item, f"{path}[{index}]")


def _check_object(schema: Schema, value: dict[str, Any], path: str) -> None:
    properties: Schema = schema.get("properties", {})
    where = _where(path)
    for name in schema.get("required", []):
        if name not in value:
            raise BodyError(f"{where} needs the field '{name}'")
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        inner = f"{path}.{name}" if path else name
        if name in properties:
            _check(properties[name], item, inner)
        elif extra is False:
            known = ", ".join(sorted(properties)) or "none"
            raise BodyError(f"{where} has an unknown field '{name}' (known: {known})")
        elif isinstance(extra, dict):
            _check(extra, item, inner)


def _where(path: str) -> str:
    return f"'{path}'" if path else "the request body"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": _is_int,
    "number": lambda v: _is_int(v) or isinstance(v, float),
    "boolean": lambda v: isinstance(v, bool),
}
_ARTICLE = {"object": "an object", "array": "a list", "string": "text",
            "integer": "a whole number", "number": "a number", "boolean": "true or false"}


_ENDPOINTS = "/v1/endpoints"
_ENDPOINT = "/v1/endpoints/{endpoint}"
_DEPLOYMENTS = "/v1/endpoints/{endpoint}/deployments"
_DEPLOYMENT = "/v1/endpoints/{endpoint}/deployments/{deployment}"


def _op(op_id: str, summary: str, answer: str | Schema, *, body: str | None = None,
        status: str = "200", errors: str = "401 404", if_match: bool = False,
        array: bool = False, query: tuple[Schema, ...] = ()) -> Schema:
    """One operation: its success answer, its error answers, its body and parameters."""
    content = _ref(answer) if isinstance(answer, str) else answer
    if array:
        content = {"type": "array", "items": content}
    responses: Schema = {status: {"description": summary, "content": _json(content)}}
    for code in ["400", "500", *errors.split()]:
        responses[code] = {"$ref": f"#/components/responses/E{code}"}
    operation: Schema = {"operationId": op_id, "summary": summary, "responses": responses}
    parameters: list[Schema] = list(query)
    if if_match:
        parameters.append({"$ref": "#/components/parameters/IfMatch"})
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {"required": True, "content": _json(_ref(body))}
    return operation


def _json(schema: Schema) -> Schema:
    return {"application/json": {"schema": schema}}


def _path_parameters(path: str) -> list[Schema]:
    return [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in ("endpoint", "deployment", *MODEL_PATH_PARAMETERS, "subscription")
            if "{" + name + "}" in path]


_LINES: Schema = {"name": "lines", "in": "query", "required": False,
                  "description": "how many of the last log lines to return",
                  "schema": {"type": "integer", "minimum": 1, "maximum": 100_000,
                             "default": 5000}}

_WAIT: Schema = {"name": "wait", "in": "query", "required": False,
                 "description": "answer once the operation ended (Succeeded or Failed); false: "
                                "at once, in Creating / Updating / Deleting",
                 "schema": {"type": "boolean", "default": True}}

PATHS: dict[str, Schema] = {
    _ENDPOINTS: {
        "get": _op("listEndpoints", "Every endpoint", "Endpoint", array=True, errors="401"),
        "post": _op("createEndpoint", "Create an endpoint (409 if it exists)", "Endpoint",
                    body="EndpointCreate", status="201", errors="401 409"),
    },
    _ENDPOINT: {
        "get": _op("showEndpoint", "One endpoint", "Endpoint"),
        "patch": _op("updateEndpoint", "Change some fields of an endpoint", "Endpoint",
                     body="EndpointPatch", if_match=True, errors="401 404 412"),
        "delete": _op("deleteEndpoint", "Delete an endpoint and its deployments",
                      "WriteResult", if_match=True, errors="401 404 412"),
    },
    _ENDPOINT + "/traffic": {
        "put": _op("setTraffic", "Set the live traffic split", "Endpoint", body="Percents",
                   if_match=True, errors="401 404 412"),
    },
    _ENDPOINT + "/mirror-traffic": {
        "put": _op("setMirrorTraffic", "Set the mirror traffic", "Endpoint", body="Percents",
                   if_match=True, errors="401 404 412"),
    },
    _ENDPOINT + "/get-credentials": {
        "post": _op("getCredentials", "Keys (auth_mode key) or a token (aml_token)",
                    {"oneOf": [_ref("Keys"), _ref("Token")]}),
    },
    _ENDPOINT + "/regenerate-keys": {
        "post": _op("regenerateKeys", "Replace the primary or the secondary key",
                    "WriteResult", body="KeyType"),
    },
    _DEPLOYMENTS: {
        "get": _op("listDeployments", "The deployments of an endpoint", "Deployment",
                   array=True),
        "post": _op("createDeployment", "Create a deployment (409 if it exists)", "Deployment",
                    body="DeploymentCreate", status="201", errors="401 404 409",
                    query=({"name": "all_traffic", "in": "query", "required": False,
                            "description": "once it is Succeeded: 100% of live traffic to it, "
                                           "0% to every other (never applied if it Failed)",
                            "schema": {"type": "boolean", "default": False}}, _WAIT)),
    },
    _DEPLOYMENT: {
        "get": _op("showDeployment", "One deployment, with its instances", "Deployment"),
        "patch": _op("updateDeployment", "Change some fields of a deployment (JSON merge patch)",
                     "Deployment", body="DeploymentPatch", if_match=True,
                     errors="401 404 409 412", query=(_WAIT,)),
        "delete": _op("deleteDeployment", "Delete a deployment (not one with traffic)",
                      "WriteResult", if_match=True, errors="401 404 412", query=(_WAIT,)),
    },
    _DEPLOYMENT + "/logs": {
        "get": _op("getLogs", "The last lines of the deployment's instance logs", "Logs",
                   query=(_LINES,)),
    },
    _DEPLOYMENT + "/compare": {
        "get": _op("getComparison", "Shadow comparison of the deployment's mirror copies: "
                   "counts, agreement rate, memory, last mismatching pairs", "Comparison"),
    },
    **ROLLOUT_PATHS,
    **MODEL_PATHS,
    **EVENT_PATHS,
    **AUTODEPLOY_PATHS,
    **ENVIRONMENT_PATHS,
}

_ERROR_ANSWERS = {
    "400": "a body of the wrong shape, or a change that breaks an Azure ML rule (see `rule`)",
    "401": "missing or wrong admin token",
    "404": "no such endpoint, deployment or model (version)",
    "409": "it exists already (update it instead), it is in use, or an operation on it is in "
           "progress",
    "412": "If-Match names a version that is no longer current",
    "422": "an environment that cannot be built (the message is the resolver's own)",
    "500": "an internal error (details in the server log)",
}


def openapi_document(server_url: str | None = None) -> Schema:
    """The whole OpenAPI 3.0 document of the admin API."""
    paths = {path: {"parameters": _path_parameters(path), **operations} if "{" in path
             else operations for path, operations in PATHS.items()}
    document: Schema = {
        "openapi": "3.0.3",
        "info": {"title": "scoregate admin API", "version": "1",
                 "description": "Endpoints, deployments, traffic, credentials and "
                                "registered models of a scoregate server. Every route "
                                "except this document needs `Authorization: Bearer <admin "
                                "token>`."},
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
            "parameters": {"IfMatch": {
                "name": "If-Match", "in": "header", "required": False,
                "description": "the ETag this change is based on (412 if stale)",
                "schema": {"type": "string"}}},
            "responses": {f"E{code}": {"description": text, "content": _json(_ref("Error"))}
                          for code, text in _ERROR_ANSWERS.items()},
        },
        "security": [{"adminToken": []}],
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document
