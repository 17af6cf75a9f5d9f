"""The auto-deploy part of the admin API's OpenAPI document (merged into `openapi.PATHS` and
`openapi.SCHEMAS`); the body is checked by `autodeploy.parse_policy`."""

from __future__ import annotations

from typing import Any

from control_plane.admin.rollout_doc import SCHEMAS as ROLLOUT_SCHEMAS
from control_plane.specs.autodeploy import (
    AUTO_DEPLOY_PATH,
    FORMATS,
    OLD_DEPLOYMENT,
    ON_GATE_FAILURE,
)

Schema = dict[str, Any]
_ANY: Schema = {"type": "object", "additionalProperties": True}
_ROLLOUT: Schema = {k: v for k, v in ROLLOUT_SCHEMAS["RolloutStart"].items() if k != "required"}
_ROLLOUT["properties"] = {k: v for k, v in _ROLLOUT["properties"].items() if k != "target"}

SCHEMAS: dict[str, Schema] = {
    "AutoDeployPolicy": {"type": "object", "x-checked-by": "autodeploy", "required": ["model"],
                         "additionalProperties": False, "properties": {
        "model": {"type": "string", "description": "the registered model whose new versions "
                  "deploy themselves"},
        "from_deployment": {"type": "string", "nullable": True, "description": "the deployment "
                            "whose settings a candidate copies; default: the one with the most "
                            "live traffic when the version is registered"},
        "gate": {"type": "string", "nullable": True, "description": "'accuracy >= 0.85', "
                 "'rmse <= 0.3', 'accuracy >= live' or 'f1 >= live - 0.02'"},
        "gate_data": {"type": "object", "nullable": True, "additionalProperties": False,
                      "required": ["columns", "rows", "labels", "label_column"], "properties": {
            "columns": {"type": "array", "items": {"type": "string"}},
            "rows": {"type": "array", "items": {"type": "array", "items": {}}},
            "labels": {"type": "array", "items": {}},
            "label_column": {"type": "string"},
            "source": {"type": "string"},
            "format": {"type": "string", "enum": list(FORMATS)},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 1000}}},
        "rollout": _ROLLOUT,
        "on_gate_failure": {"type": "string", "enum": list(ON_GATE_FAILURE),
                            "description": "a candidate that failed the gate or the rollout: "
                            "kept at 0% for inspection, or deleted"},
        "old_deployment": {"type": "string", "enum": list(OLD_DEPLOYMENT),
                           "description": "the deployment a promoted candidate replaced"},
    }},
    "AutoDeploy": {"type": "object", "additionalProperties": False,
                   "required": ["endpoint", "enabled", "policy", "runs"], "properties": {
        "endpoint": {"type": "string"}, "enabled": {"type": "boolean"},
        "policy": {**_ANY, "nullable": True},
        "runs": {"type": "array", "items": _ANY, "description": "newest first: state, stage, "
                 "gate verdict (measured metric), rollout id, stage history"}}},
    "AutoDeployDisabled": {"type": "object", "additionalProperties": False,
                           "required": ["message"], "properties": {"message": {"type": "string"}}},
}


def _op(op_id: str, summary: str, answer: str, body: bool = False) -> Schema:
    responses: Schema = {"200": {"description": summary, "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{answer}"}}}}}
    for code in ("400", "401", "404", "500"):
        responses[code] = {"$ref": f"#/components/responses/E{code}"}
    operation: Schema = {"operationId": op_id, "summary": summary, "responses": responses}
    if body:
        operation["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/AutoDeployPolicy"}}}}
    return operation


PATHS: dict[str, Schema] = {AUTO_DEPLOY_PATH: {
    "get": _op("showAutoDeploy", "The endpoint's auto-deploy policy and its newest runs",
               "AutoDeploy"),
    "put": _op("setAutoDeploy", "Set (or replace) the endpoint's auto-deploy policy",
               "AutoDeploy", body=True),
    "delete": _op("disableAutoDeploy", "Remove the policy; queued versions are skipped",
                  "AutoDeployDisabled"),
}}
