"""How a feature brings its own tables to the store without the store knowing the feature.

The store owns endpoints, deployments and secrets. A feature (rollouts, the model registry,
events, ...) hands `Store` a `StoreExtension` when `serve` wires things up: the SQL that creates
or migrates its tables, numbered, and the write guards that must hold on every endpoint change
(the rollouts' guard refuses manual traffic edits while a rollout runs; the registry's refuses
a deployment whose model version is gone). The store applies the
migrations a database lacks in one transaction at open, and records each feature's version in
`meta` under `schema:<feature>`, so an older database is carried forward and a newer one is
refused instead of misread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from control_plane.specs.resources import DeploymentSpec, EndpointSpec


@dataclass(frozen=True)
class Migration:
    """SQL that brings a feature's tables to `version` (1 creates them)."""

    version: int
    sql: str


class WriteGuard(Protocol):
    """Runs inside the write transaction of every endpoint change that commits; raises a
    `ScoregateError` to refuse it. `writer` names the feature writing (None: a user's change),
    so a feature's own writes can pass its guard."""

    def __call__(self, conn: sqlite3.Connection, before: Mapping[str, EndpointSpec],
                 after: Mapping[str, EndpointSpec], writer: str | None) -> None: ...


class DeploymentGuard(Protocol):
    """Runs inside the write transaction of every commit that adds or changes deployments,
    with those deployments (keyed `endpoint/name`); raises a `ScoregateError` to refuse it.
    The registry's guard refuses a deployment whose model version was deleted meanwhile."""

    def __call__(self, conn: sqlite3.Connection,
                 changed: Mapping[str, DeploymentSpec]) -> None: ...


@dataclass(frozen=True)
class StoreExtension:
    name: str
    migrations: tuple[Migration, ...]
    guards: tuple[WriteGuard, ...] = ()
    deployment_guards: tuple[DeploymentGuard, ...] = ()

    def __post_init__(self) -> None:
        versions = [m.version for m in self.migrations]
        if versions != list(range(1, len(versions) + 1)):
            raise ValueError(f"store extension {self.name}: migrations must be numbered 1..n, "
                             f"got {versions}")

    @property
    def version(self) -> int:
        return len(self.migrations)
