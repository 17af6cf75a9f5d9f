"""scoregate's control plane: specs, the store, instances, rollouts, the admin API and the CLI.

The public names below are what another package (a feature, a test, a tool) may rely on;
everything else is reached through its sub-package. `Store` and its extension types load on
first use, so `import control_plane.cli` stays as light as the CLI needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from control_plane.errors import (
    ConfigError,
    Conflict,
    NotFound,
    PreconditionFailed,
    SchemaTooNew,
    ScoregateError,
    ValidationError,
)

if TYPE_CHECKING:
    from control_plane.entry import main
    from control_plane.store.extension import Migration, StoreExtension
    from control_plane.store.sqlite_store import Store

__all__ = [
    "ConfigError",
    "Conflict",
    "Migration",
    "NotFound",
    "PreconditionFailed",
    "SchemaTooNew",
    "ScoregateError",
    "Store",
    "StoreExtension",
    "ValidationError",
    "main",
]

_LAZY = {
    "main": "control_plane.entry",
    "Migration": "control_plane.store.extension",
    "StoreExtension": "control_plane.store.extension",
    "Store": "control_plane.store.sqlite_store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'control_plane' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
