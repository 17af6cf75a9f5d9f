"""The `model_versions` table: one row per (name, version), read and written inside the
store's transactions (`Store.feature_read/feature_write`).

The row keeps the version's JSON (`ModelVersion.to_dict`, with `path` relative to the models
folder so the state folder can move) and, as columns, what queries need: the digest (to find
artifact folders no row uses), `archived`, and `etag`: the registry's own revision at the
write that last changed the row, so an ETag never repeats, not even after delete and create.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path

from control_plane.errors import NotFound, ValidationError
from control_plane.registry.asset import ModelVersion
from control_plane.registry.reference import parse_reference
from control_plane.specs.resources import DeploymentSpec
from control_plane.store.extension import Migration, StoreExtension
from control_plane.store.sqlite_store import Record

FEATURE = "registry"
_V1 = """
CREATE TABLE IF NOT EXISTS model_versions (
    name TEXT NOT NULL, version INTEGER NOT NULL, digest TEXT NOT NULL,
    archived INTEGER NOT NULL, etag INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (name, version));
CREATE INDEX IF NOT EXISTS model_versions_digest ON model_versions (digest);
CREATE TABLE IF NOT EXISTS model_registry_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO model_registry_meta (key, value) VALUES ('revision', 0)
"""
_COLUMNS = "body, etag"


def save(conn: sqlite3.Connection, root: Path, model: ModelVersion) -> str:
    """Insert or replace; returns the row's new ETag."""
    etag = _bump(conn)
    body = model.to_dict()
    body["path"] = Path(model.path).relative_to(root).as_posix()
    conn.execute(
        "INSERT INTO model_versions (name, version, digest, archived, etag, body) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name, version) DO UPDATE SET "
        "archived = excluded.archived, etag = excluded.etag, body = excluded.body",
        (model.name, model.version, model.digest, int(model.archived), etag, json.dumps(body)))
    return str(etag)


def delete(conn: sqlite3.Connection, name: str, version: int) -> None:
    _bump(conn)
    conn.execute("DELETE FROM model_versions WHERE name = ? AND version = ?", (name, version))


def versions(conn: sqlite3.Connection, root: Path, name: str) -> list[Record[ModelVersion]]:
    """Every version of `name`, highest first."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM model_versions WHERE name = ? "
                        "ORDER BY version DESC", (name,))
    return list(_rows(rows, root))


def everything(conn: sqlite3.Connection, root: Path) -> list[Record[ModelVersion]]:
    """Every version of every model, by name, then highest version first."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM model_versions ORDER BY name, version DESC")
    return list(_rows(rows, root))


def names(conn: sqlite3.Connection) -> list[str]:
    return [str(row[0]) for row in
            conn.execute("SELECT DISTINCT name FROM model_versions ORDER BY name")]


def digests(conn: sqlite3.Connection) -> set[str]:
    return {str(row[0]) for row in conn.execute("SELECT DISTINCT digest FROM model_versions")}


def digest_in_use(conn: sqlite3.Connection, digest: str) -> bool:
    row = conn.execute("SELECT 1 FROM model_versions WHERE digest = ? LIMIT 1", (digest,))
    return row.fetchone() is not None


def refuse_missing_models(conn: sqlite3.Connection,
                          changed: Mapping[str, DeploymentSpec]) -> None:
    """The store's deployment guard: inside the transaction that commits a deployment, its
    model version must still be registered (a delete may have committed since it resolved)."""
    for key, spec in changed.items():
        if spec.model_ref is None:
            continue
        try:
            ref = parse_reference(spec.model_ref)
        except ValidationError as error:
            raise ValidationError(error.rule, f"deployment {key}: {error.message}") from None
        if ref.version is None:
            raise ValidationError("model-reference", f"deployment {key}: model {ref} was not "
                                  "resolved to a version (the registry resolves it at create)")
        row = conn.execute("SELECT 1 FROM model_versions WHERE name = ? AND version = ?",
                           (ref.name, ref.version)).fetchone()
        if row is None:
            raise NotFound(f"deployment {key}: model {ref} is not registered (deleted "
                           "meanwhile?); create the deployment again")


def _rows(cursor: sqlite3.Cursor, root: Path) -> Iterator[Record[ModelVersion]]:
    for body, etag in cursor:
        data = json.loads(body)
        data["path"] = str(root / data["path"])
        yield Record(ModelVersion.from_dict(data), str(etag))


def _bump(conn: sqlite3.Connection) -> int:
    conn.execute("UPDATE model_registry_meta SET value = value + 1 WHERE key = 'revision'")
    row = conn.execute("SELECT value FROM model_registry_meta WHERE key = 'revision'").fetchone()
    return int(row[0])


STORE_EXTENSION = StoreExtension(FEATURE, (Migration(1, _V1),),
                                 deployment_guards=(refuse_missing_models,))
