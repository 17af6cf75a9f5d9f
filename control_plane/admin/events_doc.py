"""The events part of the admin API's OpenAPI document (merged into `openapi.PATHS` and
`openapi.SCHEMAS`): the event log, subscriptions and their dead letters."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]
EVENTS = "/v1/events"
SUBSCRIPTIONS = "/v1/event-subscriptions"
SUBSCRIPTION = SUBSCRIPTIONS + "/{subscription}"
DEAD_LETTERS = SUBSCRIPTION + "/dead-letters"
REPLAY = DEAD_LETTERS + "/replay"


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


_STRINGS: Schema = {"type": "array", "items": {"type": "string"}}
_ANY: Schema = {"type": "object", "additionalProperties": True}
_SUBSCRIPTION_FIELDS: Schema = {
    "name": {"type": "string", "minLength": 3, "maxLength": 32},
    "endpoint": {"type": "string", "description": "the receiver's http(s) URL"},
    "event_types": {**_STRINGS, "description": "Event Grid's includedEventTypes; empty: all"},
    "subject_begins_with": {"type": "string"},
    "subject_ends_with": {"type": "string"},
    "schema": {"type": "string", "enum": ["cloudevents", "eventgrid"]},
    "max_attempts": {"type": "integer", "minimum": 1, "maximum": 30},
}

SCHEMAS: dict[str, Schema] = {
    "Event": {"type": "object", "additionalProperties": False, "required": [
        "seq", "id", "type", "subject", "time", "data"], "properties": {
        "seq": {"type": "integer", "description": "position in the log; only grows"},
        "id": {"type": "string"}, "type": {"type": "string"}, "subject": {"type": "string"},
        "time": {"type": "string", "format": "date-time"}, "data": _ANY}},
    "SubscriptionCreate": {"type": "object", "additionalProperties": False,
                           "required": ["name", "endpoint"], "properties": {
        **_SUBSCRIPTION_FIELDS,
        "secret": {"type": "string", "minLength": 16,
                   "description": "HMAC key of the signature header; generated when absent"}}},
    "Subscription": {"type": "object", "additionalProperties": True,
                     "required": ["name", "endpoint", "cursor"], "properties": {
        **_SUBSCRIPTION_FIELDS,
        "final_types": _STRINGS, "created_at": {"type": "number"},
        "cursor": {"type": "integer", "description": "seq of the last event handled"},
        "secret": {"type": "string", "description": "only in the answer to create"}}},
    "DeadLetter": {"type": "object", "additionalProperties": True, "required": [
        "id", "seq", "type", "subject", "attempts", "error", "event"], "properties": {
        "id": {"type": "integer"}, "seq": {"type": "integer"}, "type": {"type": "string"},
        "subject": {"type": "string"}, "attempts": {"type": "integer"},
        "error": {"type": "string"}, "replay_pending": {"type": "boolean"},
        "event": _ref("Event")}},
    "Replay": {"type": "object", "additionalProperties": False, "properties": {
        "ids": {"type": "array", "items": {"type": "integer"},
                "description": "dead letters to send again; all when absent"}}},
    "Replayed": {"type": "object", "required": ["replayed"],
                 "properties": {"replayed": {"type": "integer"}}},
}


def _op(op_id: str, summary: str, answer: Schema, status: str = "200",
        body: str | None = None, errors: str = "401 404",
        query: tuple[Schema, ...] = ()) -> Schema:
    responses: Schema = {status: {"description": summary,
                                  "content": {"application/json": {"schema": answer}}}}
    for code in ["400", "500", *errors.split()]:
        responses[code] = {"$ref": f"#/components/responses/E{code}"}
    operation: Schema = {"operationId": op_id, "summary": summary, "responses": responses}
    if body is not None:
        operation["requestBody"] = {"required": body != "Replay", "content": {
            "application/json": {"schema": _ref(body)}}}
    if query:
        operation["parameters"] = list(query)
    return operation


def _query(name: str, description: str, schema: Schema) -> Schema:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


_LIST = {"type": "array", "items": _ref("Subscription")}
PATHS: dict[str, Schema] = {
    EVENTS: {"get": _op("listEvents", "The event log, oldest first (bounded retention)",
                        {"type": "array", "items": _ref("Event")}, errors="401", query=(
        _query("since", "an RFC 3339 time, or an age like 90s, 30m, 2h, 7d", {"type": "string"}),
        _query("type", "event types, comma-separated (repeatable)", {"type": "string"}),
        _query("limit", "at most this many, the newest", {"type": "integer", "minimum": 1,
                                                          "maximum": 10_000, "default": 1000}),
    ))},
    SUBSCRIPTIONS: {
        "get": _op("listEventSubscriptions", "Every event subscription", _LIST, errors="401"),
        "post": _op("createEventSubscription", "Subscribe a receiver (the answer is the only "
                    "place its secret is shown)", _ref("Subscription"), status="201",
                    body="SubscriptionCreate", errors="401 409"),
    },
    SUBSCRIPTION: {
        "get": _op("showEventSubscription", "One subscription", _ref("Subscription")),
        "delete": _op("deleteEventSubscription", "Delete a subscription and its dead letters",
                      {"type": "object", "required": ["message"],
                       "properties": {"message": {"type": "string"}}}),
    },
    DEAD_LETTERS: {"get": _op("listDeadLetters", "Events the subscription gave up on",
                              {"type": "array", "items": _ref("DeadLetter")})},
    REPLAY: {"post": _op("replayDeadLetters", "Send dead letters again (all, or `ids`), "
                         "before the next new event", _ref("Replayed"), body="Replay")},
}
