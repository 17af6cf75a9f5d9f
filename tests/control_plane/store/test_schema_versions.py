"""Schema versions in `meta`: an older database is carried forward in one transaction, a newer
one is refused, and a migration that fails leaves the database as it was.

`tests/data/state-db-abc044a.sql` is a database written by the code before the regroup (commit
abc044a: one `schema` key, the rollouts table created by the store itself), dumped as SQL: the
blue-green example applied (blue 90 / green 10 after the rollout's first step) and one running
canary rollout of green.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from control_plane.errors import SchemaTooNew
from control_plane.rollouts import rows as rollout_rows
from control_plane.store.database import CORE, DB_NAME, Database, schema_versions
from control_plane.store.extension import Migration, StoreExtension
from control_plane.store.sqlite_store import Store
from tests.support.processes import REPO_ROOT

OLD_DUMP = REPO_ROOT / "tests" / "data" / "state-db-abc044a.sql"
OLD_TABLES = ("endpoints", "deployments", "secrets", "rollouts")
ROLLOUTS = (rollout_rows.STORE_EXTENSION,)


def load_dump(home: Path, dump: Path = OLD_DUMP) -> Path:
    home.mkdir(mode=0o700)
    path = home / DB_NAME
    with sqlite3.connect(path) as conn:
        conn.executescript(dump.read_text())
    conn.close()
    return path


def rows(path: Path, table: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        found = conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
    conn.close()
    return found


def meta(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        found = {str(k): int(v) for k, v in conn.execute("SELECT key, value FROM meta")}
    conn.close()
    return found


def test_a_database_written_before_the_regroup_opens_with_its_data_intact(
        tmp_path: Path) -> None:
    path = load_dump(tmp_path / "home")
    before = {table: rows(path, table) for table in OLD_TABLES}
    assert meta(path) == {"schema": 1, "revision": 2}
    assert all(before.values()), before

    store = Store(tmp_path / "home", ROLLOUTS)
    try:
        # core 2 adds the events outbox (empty: the old changes raised no event), 3 provisioning
        assert meta(path) == {"schema": CORE.version, "schema:rollouts": 2, "revision": 2}
        assert {table: rows(path, table) for table in OLD_TABLES} == before
        assert rows(path, "events") == []
        assert store.revision == 2
        assert store.endpoint("my-endpoint").spec.traffic == {"blue": 90, "green": 10}
        assert sorted(store.deployments("my-endpoint")) == ["my-endpoint/blue",
                                                            "my-endpoint/green"]
        assert store.secrets("my-endpoint").primary_key == str(before["secrets"][0][1])
        state = store.state()  # deployments from before provisioning states were stored
        assert {state.status(key).state for key in state.deployments} == {"Succeeded"}
        running = store.feature_read(lambda conn: rollout_rows.active(conn, "my-endpoint"))
        assert [(r.id, r.target, r.state) for r in running] == [
            ("0123456789ab", "green", "running")]
    finally:
        store.close()


def test_the_old_database_is_carried_forward_in_one_transaction(tmp_path: Path) -> None:
    """A later extension's migration fails: the versions recorded before it are rolled back
    too, so the file is exactly the old one."""
    path = load_dump(tmp_path / "home")
    broken = StoreExtension("broken", (Migration(1, "CREATE TABLE broken (a INTEGER); "
                                                    "INSERT INTO no_such_table VALUES (1)"),))
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        Store(tmp_path / "home", (*ROLLOUTS, broken))
    assert meta(path) == {"schema": 1, "revision": 2}
    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert "broken" not in tables


def test_a_newer_database_is_refused_with_schema_too_new(tmp_path: Path) -> None:
    path = load_dump(tmp_path / "home")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = 7 WHERE key = 'schema'")
    conn.close()
    with pytest.raises(SchemaTooNew, match=r"schema of this state database is version 7, "
                                           rf"newer than this scoregate knows \({CORE.version}\)"):
        Store(tmp_path / "home", ROLLOUTS)
    assert meta(path)["schema"] == 7  # untouched


def test_a_newer_feature_version_is_refused_too(tmp_path: Path) -> None:
    path = load_dump(tmp_path / "home")
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('schema:rollouts', 3)")
    conn.close()
    with pytest.raises(SchemaTooNew, match="schema:rollouts .* version 3"):
        Store(tmp_path / "home", ROLLOUTS)


def test_serve_refuses_a_newer_database_in_one_line_without_a_traceback(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = load_dump(home)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = 7 WHERE key = 'schema'")
    conn.close()
    result = subprocess.run(
        [sys.executable, "-m", "control_plane", "serve", "--home", str(home), "--port", "0",
         "--admin-port", "0"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: schema of this state database is version 7"), \
        result.stderr
    assert meta(path)["schema"] == 7


def test_an_extension_with_two_migrations_on_a_v1_database_runs_only_the_second(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    # Not idempotent on purpose: running migration 1 again would fail ("already exists").
    first = Migration(1, "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
    second = Migration(2, "ALTER TABLE notes ADD COLUMN author TEXT NOT NULL DEFAULT 'nobody'")
    v1 = Database(home, (StoreExtension("notes", (first,)),))
    with v1.write() as conn:
        conn.execute("INSERT INTO notes (text) VALUES ('kept')")
    v1.close()

    v2 = Database(home, (StoreExtension("notes", (first, second)),))
    try:
        with v2.read() as conn:
            assert conn.execute("SELECT text, author FROM notes").fetchall() == [
                ("kept", "nobody")]
            assert schema_versions(conn) == {"schema": CORE.version, "schema:notes": 2}
    finally:
        v2.close()


def test_a_migration_that_fails_half_way_leaves_the_old_version(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = Migration(1, "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
    v1 = Database(home, (StoreExtension("notes", (first,)),))
    with v1.write() as conn:
        conn.execute("INSERT INTO notes (text) VALUES ('kept')")
    v1.close()

    # The first statement succeeds, the second raises: nothing of the migration may remain.
    half = Migration(2, "ALTER TABLE notes ADD COLUMN author TEXT; "
                        "UPDATE notes SET author = 'x'; "
                        "INSERT INTO notes (id, text) VALUES (1, 'duplicate id')")
    with pytest.raises(sqlite3.IntegrityError):
        Database(home, (StoreExtension("notes", (first, half)),))

    again = Database(home, (StoreExtension("notes", (first,)),))
    try:
        with again.read() as conn:
            columns = [row[1] for row in conn.execute("PRAGMA table_info(notes)")]
            assert columns == ["id", "text"]
            assert conn.execute("SELECT text FROM notes").fetchall() == [("kept",)]
            assert schema_versions(conn) == {"schema": CORE.version, "schema:notes": 1}
    finally:
        again.close()
