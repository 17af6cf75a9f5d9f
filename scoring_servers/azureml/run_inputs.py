"""From an HTTP request to run()'s arguments, per RunSignature mode, with azmlinfsrv's input
errors (its statuses and messages, see its `input_parsers.py`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from scoring_servers.azureml.contrib_services.aml_request import AMLRequest, is_json_mimetype
from scoring_servers.azureml.run_signature import HEADERS_PARAMETER, SCHEMA, TEXT, RunSignature

if TYPE_CHECKING:  # annotations only (Python 3.8 cannot subscript these at run time)
    RawHeaders = Sequence[tuple[bytes, bytes]]
    Call = tuple[tuple[Any, ...], "dict[str, Any] | None"]  # positional args, keyword args


class InputError(Exception):
    """A request run() cannot be called with: answered with `status` and `message`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def build_call(signature: RunSignature, scope: Mapping[str, Any], body: bytes) -> Call:
    """run()'s arguments for a GET or POST (RAW: any method). Raises InputError."""
    method = scope["method"]
    kwargs: dict[str, Any] = {}
    if signature.mode == TEXT:
        if method == "POST":
            try:
                text = body.decode("utf-8")
                if signature.first_positional and not signature.wants_headers:
                    return (text,), None  # the common case, without a dict per request
                kwargs[signature.first] = text
            except UnicodeDecodeError as exc:
                raise InputError(400, f"Input cannot be decoded as UTF-8: {exc}") from None
        else:
            kwargs[signature.first] = json.dumps(query_input(scope["query_string"]))
    elif signature.mode == SCHEMA:
        values = (query_input(scope["query_string"]) if method == "GET"
                  else _json_object(scope, body))
        kwargs.update(_parameters(signature, values))
    else:
        kwargs[signature.first] = raw_request(scope, body)
    if signature.wants_headers:
        kwargs[HEADERS_PARAMETER] = request_headers(scope["headers"])
    return (), kwargs


def query_input(query_string: bytes) -> dict[str, Any]:
    """Query parameters as run()'s input: values parsed as JSON when they are, repeated keys
    as lists (azmlinfsrv's `_parse_get_parameters`)."""
    lists: dict[str, list[str]] = {}
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        lists.setdefault(key, []).append(value)
    return {key: _json_or_text(values[0]) if len(values) == 1
            else [_json_or_text(value) for value in values] for key, values in lists.items()}


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _json_object(scope: Mapping[str, Any], body: bytes) -> dict[str, Any]:
    content_type = header(scope["headers"], b"content-type")
    mimetype = content_type.split(b";", 1)[0].strip().lower().decode("latin-1")
    if not is_json_mimetype(mimetype):
        raise InputError(415, "Expects Content-Type to be application/json")
    try:
        value = json.loads(body)
    except ValueError as exc:
        if body:
            raise InputError(400, f"POST body could not be decoded as JSON: {exc}") from None
        raise InputError(400, "POST body is empty. Expecting a JSON dictionary.") from None
    if not isinstance(value, dict):
        raise InputError(400, "POST body should be a JSON dictionary.")
    return value


def _parameters(signature: RunSignature, values: Mapping[str, Any]) -> dict[str, Any]:
    kwargs = {}
    for parameter in signature.parameters:
        if parameter.name in values:
            kwargs[parameter.name] = values[parameter.name]
        elif parameter.required:
            raise InputError(400, f"A value is not provided for the {parameter.name!r} parameter.")
        else:
            kwargs[parameter.name] = parameter.default
    return kwargs


def header(headers: RawHeaders, name: bytes) -> bytes:
    for key, value in headers:
        if key == name:
            return value
    return b""


def header_pairs(headers: RawHeaders) -> list[tuple[str, str]]:
    """Request headers as a WSGI app behind gunicorn sees them (azmlinfsrv's view): names
    Title-Cased, repeated headers joined with ",", names with "_" dropped (gunicorn drops them
    so they cannot pose as "-" headers)."""
    joined: dict[str, str] = {}
    for raw_name, raw_value in headers:
        if b"_" in raw_name:
            continue
        name = raw_name.decode("latin-1").title()
        value = raw_value.decode("latin-1")
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    return [(name, value) for name, value in joined.items()
            if value or name not in ("Content-Type", "Content-Length")]


def request_headers(headers: RawHeaders) -> dict[str, str]:
    """The `request_headers` argument: `dict(request.headers)` as azmlinfsrv passes it."""
    return dict(header_pairs(headers))


def raw_request(scope: Mapping[str, Any], body: bytes) -> AMLRequest:
    return AMLRequest(scope["method"], scope["path"], scope["query_string"],
                      header_pairs(scope["headers"]), body, scheme=scope.get("scheme", "http"),
                      server=scope.get("server"), client=scope.get("client"),
                      root_path=scope.get("root_path", ""))
