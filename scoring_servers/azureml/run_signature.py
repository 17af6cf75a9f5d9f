"""How run() wants its input, decided once at start the way azmlinfsrv decides it:

- `@rawhttp` → RAW: run(request object);
- decorated with inference_schema's `@input_schema` → SCHEMA: the JSON body's keys become
  run()'s keyword arguments (the decorator converts them to numpy/pandas/... itself);
- otherwise → TEXT: run(body as str).

A parameter named `request_headers` additionally gets the request's headers as a dict. The
inference_schema package is only consulted when the script imported it (it keeps its schemas in
a module-level registry keyed by the function's module and name, `schema_util`), so scripts
that do not use it do not need it installed.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scoring_servers.azureml.contrib_services.aliases import is_raw_http_requested
from scoring_servers.azureml.errors import ScriptError

TEXT = "text"
SCHEMA = "schema"
RAW = "raw"
HEADERS_PARAMETER = "request_headers"
SCHEMA_UTIL = "inference_schema.schema_util"
_EMPTY = inspect.Parameter.empty


@dataclass(frozen=True)
class Parameter:
    name: str
    default: Any = _EMPTY

    @property
    def required(self) -> bool:
        return self.default is _EMPTY


@dataclass(frozen=True)
class RunSignature:
    mode: str  # TEXT, SCHEMA or RAW
    first: str  # the input parameter (TEXT and RAW)
    parameters: tuple[Parameter, ...]  # SCHEMA: every parameter but request_headers
    wants_headers: bool
    first_positional: bool = True  # `first` can be passed positionally (the cheaper call)


def analyse_run(run: Callable[..., Any]) -> RunSignature:
    """Raises ScriptError for a run() azmlinfsrv would refuse (its messages)."""
    try:
        signature = inspect.signature(run)
    except (TypeError, ValueError) as exc:
        raise ScriptError(f"cannot inspect run(): {exc}") from exc
    params = list(signature.parameters.values())
    allowed = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(param.kind not in allowed for param in params):
        raise ScriptError("run() cannot accept positional-only arguments, *args, or **kwargs.")
    wants_headers = any(param.name == HEADERS_PARAMETER for param in params)
    params = [param for param in params if param.name != HEADERS_PARAMETER]
    if not params:
        if wants_headers:
            raise ScriptError('run() needs to accept an argument other than "request_headers".')
        raise ScriptError("run() needs to accept an argument for input data.")
    raw = is_raw_http_requested()
    decorated = is_schema_decorated(run)
    if raw and decorated:
        raise ScriptError("run() cannot be decorated with both @rawhttp and @input_schema")
    mode = RAW if raw else SCHEMA if decorated else TEXT
    return RunSignature(mode, params[0].name,
                        tuple(Parameter(param.name, param.default) for param in params),
                        wants_headers,
                        params[0].kind == inspect.Parameter.POSITIONAL_OR_KEYWORD)


def is_schema_decorated(run: Callable[..., Any]) -> bool:
    schema_util = sys.modules.get(SCHEMA_UTIL)
    return schema_util is not None and bool(schema_util.is_schema_decorated(run))


def original_function(run: Callable[..., Any]) -> Callable[..., Any]:
    """The script's own function under inference_schema's wrappers (`__wrapped__` chain)."""
    function = run
    seen = 0
    while hasattr(function, "__wrapped__") and seen < 32:
        function = function.__wrapped__
        seen += 1
    return function
