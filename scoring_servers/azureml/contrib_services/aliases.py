"""Make `from azureml.contrib.services.aml_request import rawhttp` work without Microsoft's
package: register scoregate's modules under Microsoft's names, for each name that is not
importable already. Where Microsoft's modules exist they are left alone, and the server
recognises their objects too (`is_raw_http_requested`, results.py)."""

from __future__ import annotations

import importlib.util
import sys
import types

from scoring_servers.azureml.contrib_services import aml_request, aml_response

# module name → scoregate's module
ALIASES = {
    "azureml.contrib.services.aml_request": aml_request,
    "azureml.contrib.services.aml_response": aml_response,
    "azureml_inference_server_http.api.aml_request": aml_request,
    "azureml_inference_server_http.api.aml_response": aml_response,
}


def install_aliases() -> None:
    """Register the aliases whose names cannot be imported; idempotent."""
    for name, module in ALIASES.items():
        if name in sys.modules or _importable(name):
            continue
        parent_name, _, leaf = name.rpartition(".")
        parent = _package(parent_name)
        sys.modules[name] = module
        setattr(parent, leaf, module)


def is_raw_http_requested() -> bool:
    """Whether any `rawhttp` (ours or Microsoft's) marked the script's run()."""
    for name in ("azureml.contrib.services.aml_request",
                 "azureml_inference_server_http.api.aml_request"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "_rawHttpRequested", False):
            return True
    return bool(aml_request._rawHttpRequested)


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _package(name: str) -> types.ModuleType:
    """The package `name`: the installed one when importable, else an empty stand-in."""
    existing = sys.modules.get(name)
    if existing is not None:
        return existing
    if _importable(name):
        return importlib.import_module(name)
    package = types.ModuleType(name)
    package.__path__ = []
    sys.modules[name] = package
    parent_name, _, leaf = name.rpartition(".")
    if parent_name:
        setattr(_package(parent_name), leaf, package)
    return package
