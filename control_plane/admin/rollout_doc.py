"""The rollout part of the admin API's OpenAPI document (merged into `openapi.PATHS`).

Kept apart so `openapi.py` imports it without a cycle; the request body is checked by
`rollout_api.parse_start` (numbers and nested guardrails need more than `check_body` does).
"""

from __future__ import annotations

from typing import Any

from control_plane.specs.rollout import ACTIONS
from control_plane.specs.rollout import ROLLOUT_PATH as ROLLOUT

__all__ = ["ACTIONS", "GUARDRAILS", "PATHS", "ROLLOUT", "SCHEMAS"]
Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _number(description: str, minimum: float = 0) -> Schema:
    return {"type": "number", "minimum": minimum, "description": description}


GUARDRAILS: Schema = {"type": "object", "additionalProperties": False, "properties": {
    "max_error_rate": _number("largest share of 5xx/408/424/429 answers (default 0.01)"),
    "max_p99_ms": _number("largest p99 latency of the target"),
    "max_p95_ms": _number("largest p95 latency of the target"),
    "max_latency_factor": _number("largest target p99 / stable p99 over the same window"),
    "min_requests": {"type": "integer", "minimum": 1, "description": "fewest requests (or "
                     "compared answers, mirror phase) to judge a window (default 50)"},
    "on_too_few": {"type": "string", "enum": ["wait", "fail"]},
    "max_extensions": {"type": "integer", "minimum": 0, "maximum": 10},
    "min_agreement": _number("mirror phase: lowest match / (match + mismatch + shadow_error)"),
}}

SCHEMAS: dict[str, Schema] = {
    "RolloutStart": {"type": "object", "x-checked-by": "rollout_api", "required": ["target"],
                     "additionalProperties": False, "properties": {
        "target": {"type": "string"},
        "strategy": {"type": "string", "enum": ["all-at-once", "canary", "linear"]},
        "canary_percent": {"type": "integer", "minimum": 1, "maximum": 50},
        "step": {"type": "integer", "minimum": 10, "maximum": 50},
        "steps": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 100}},
        "bake_s": _number("wait at each step, seconds", 0.5),
        "mirror_percent": {"type": "integer", "minimum": 0, "maximum": 50},
        "mirror_bake_s": _number("length of the mirror phase, seconds", 0.5),
        "guardrails": GUARDRAILS,
        "webhook": {"type": "string", "nullable": True},
    }},
    "Rollout": {"type": "object", "additionalProperties": True, "required": [
        "id", "endpoint", "target", "state", "current", "steps", "start_traffic",
        "start_mirror", "guardrails", "progress"], "properties": {
        "state": {"type": "string", "enum": ["running", "paused", "succeeded", "rolled_back",
                                             "aborted"]},
        "steps": {"type": "array", "items": {"type": "object", "additionalProperties": True}},
        "progress": {"type": "string"}}},
}


def _op(op_id: str, summary: str, status: str = "200", body: bool = False) -> Schema:
    responses: Schema = {status: {"description": summary,
                                  "content": {"application/json": {"schema": _ref("Rollout")}}}}
    for code in ("400", "401", "404", "409", "500"):
        responses[code] = {"$ref": f"#/components/responses/E{code}"}
    operation: Schema = {"operationId": op_id, "summary": summary, "responses": responses}
    if body:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": _ref("RolloutStart")}}}
    return operation


PATHS: dict[str, Schema] = {
    ROLLOUT: {
        "get": _op("showRollout", "The endpoint's latest rollout, its steps and verdicts"),
        "post": _op("startRollout", "Start a guarded rollout (409 if one is running)", "201",
                    body=True),
    },
    **{f"{ROLLOUT}/{action}": {"post": _op(f"{action}Rollout", f"{action.capitalize()} the "
                                           "running rollout")} for action in ACTIONS},
}
