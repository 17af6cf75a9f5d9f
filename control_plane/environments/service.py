"""Registered environments: create, list, show, archive, restore, and references.

The same rules as Azure's (and as scoregate's model registry): a version not given is the next
number; registering an existing version is a `Conflict` (versions are immutable: register a new
one); `@latest` is the highest non-archived version; an archived version is still usable by
exact reference but hidden from lists and from `@latest`.
"""

from __future__ import annotations

import re
import sqlite3
import time

from control_plane.environments import rows
from control_plane.environments.conda import parse_conda_text
from control_plane.environments.registered import EnvironmentSpec, RegisteredEnvironment
from control_plane.environments.requirements import EnvironmentRequest, normalize
from control_plane.errors import Conflict, NotFound, ValidationError
from control_plane.store import outbox
from control_plane.store.sqlite_store import Store

ENVIRONMENT_REGISTERED = outbox.SCOREGATE + "environment.registered"
_REFERENCE = re.compile(
    r"^(?:azureml:)?(?P<name>[^:@/]+)(?::(?P<version>[^:@/]+)|@(?P<label>\w+))$")


class EnvironmentService:
    """Over the store's `environments` table (`rows.STORE_EXTENSION` must be among the
    store's extensions)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def create(self, spec: EnvironmentSpec) -> RegisteredEnvironment:
        def write(conn: sqlite3.Connection) -> RegisteredEnvironment:
            existing = rows.versions(conn, spec.name)
            version = spec.version or _next_version(existing)
            if any(e.version == version for e in existing):
                raise Conflict(f"environment {spec.name} version {version} exists already; "
                               f"versions cannot change: register another version (or leave "
                               f"version out to get {_next_version(existing)})")
            created = RegisteredEnvironment(spec, version, False, time.time())
            rows.insert(conn, created)
            outbox.emit(conn, ENVIRONMENT_REGISTERED, f"environments/{spec.name}:{version}", {
                "environmentName": spec.name, "environmentVersion": version,
                "environmentTags": dict(spec.tags)})  # in this transaction: the outbox
            return created

        return self._store.feature_write(write)

    def versions(self, name: str | None = None,
             include_archived: bool = False) -> list[RegisteredEnvironment]:
        found = self._store.feature_read(lambda conn: rows.versions(conn, name))
        if name is not None and not found:
            raise self._not_found(name, None)
        return [e for e in found if include_archived or not e.archived]

    def show(self, name: str, version: str | None = None,
             label: str | None = None) -> RegisteredEnvironment:
        """One version: given, or by label (`latest`, the default)."""
        return self._store.feature_read(lambda conn: _pick(conn, name, version, label))

    def resolve(self, reference: str) -> RegisteredEnvironment:
        """`azureml:name:version`, `azureml:name@latest` (the prefix is optional)."""
        match = _REFERENCE.match(reference.strip())
        if not match:
            raise ValidationError("environment-reference", f"{reference!r} is not an environment "
                                  "reference: write azureml:<name>:<version> or "
                                  "azureml:<name>@latest")
        return self.show(match["name"], match["version"], match["label"])

    def archive(self, name: str, version: str | None = None) -> list[RegisteredEnvironment]:
        """One version, or every version of the name."""
        return self._set_archived(name, version, True)

    def restore(self, name: str, version: str | None = None) -> list[RegisteredEnvironment]:
        return self._set_archived(name, version, False)

    def request(self, environment: RegisteredEnvironment) -> EnvironmentRequest:
        """What to build for it (its conda file, mapped to PyPI)."""
        conda = parse_conda_text(environment.spec.conda_file, environment.reference)
        return EnvironmentRequest(conda.python, normalize(conda.requirements,
                                                          environment.reference),
                                  environment.reference)

    def _set_archived(self, name: str, version: str | None,
                      archived: bool) -> list[RegisteredEnvironment]:
        def write(conn: sqlite3.Connection) -> list[RegisteredEnvironment]:
            chosen = ([_pick(conn, name, version, None)] if version is not None
                      else rows.versions(conn, name))
            if not chosen:  # the same connection: the store's lock is held here
                raise _not_found_in(rows.versions(conn), name, None)
            changed = [e.with_archived(archived) for e in chosen]
            for environment in changed:
                rows.update(conn, environment)
            return changed

        return self._store.feature_write(write)

    def _not_found(self, name: str, version: str | None) -> NotFound:
        return _not_found_in(self._store.feature_read(rows.versions), name, version)


def _pick(conn: sqlite3.Connection, name: str, version: str | None,
          label: str | None) -> RegisteredEnvironment:
    if version is not None:
        found = rows.get(conn, name, version)
        if found is None:
            raise _not_found_in(rows.versions(conn), name, version)
        return found
    if (label or "latest") != "latest":
        raise ValidationError("environment-label", f"unknown label @{label}; the one label is "
                              "@latest")
    live = [e for e in rows.versions(conn, name) if not e.archived]
    if not live:
        raise _not_found_in(rows.versions(conn), name, None)
    return max(live, key=lambda e: _version_order(e.version))


def _not_found_in(everything: list[RegisteredEnvironment], name: str,
                  version: str | None) -> NotFound:
    mine = [e for e in everything if e.name == name]
    if version is not None and mine:
        shown = ", ".join(e.version + (" (archived)" if e.archived else "") for e in mine)
        return NotFound(f"environment {name} has no version {version}; it has {shown}")
    if mine:
        return NotFound(f"environment {name} has no version left that is not archived "
                        f"(restore one: `scoregate environment restore --name {name}`)")
    names = sorted({e.name for e in everything})
    return NotFound(f"no environment named {name}; registered: {', '.join(names) or 'none'}")


def _next_version(existing: list[RegisteredEnvironment]) -> str:
    numbers = [int(e.version) for e in existing if e.version.isdigit()]
    return str(max(numbers, default=0) + 1)


def _version_order(version: str) -> tuple[int, int, str]:
    """Numbers compare as numbers and above words (Azure's versions are strings)."""
    return (1, int(version), "") if version.isdigit() else (0, 0, version)
