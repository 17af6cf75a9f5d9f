"""The SQLite file under the state directory: permissions, schema and transactions.

Keys live in this file, so the directory is created 0700 and the file 0600 before SQLite
ever writes to it (SQLite gives its -wal and -shm files the database file's mode).
WAL with `synchronous=FULL` makes a commit durable once it returns, and every write is a
`BEGIN IMMEDIATE` transaction, so writers in other threads and processes queue on SQLite's
lock instead of overwriting each other.

Schema: the store's own tables are the `core` extension; each feature's are its own
(`extension.py`). Opening the file applies, in one transaction, every migration it lacks.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from control_plane.errors import SchemaTooNew, StateCorrupt, StateFull, StateUnavailable
from control_plane.store import outbox, provisioning
from control_plane.store.extension import Migration, StoreExtension

__all__ = ["CORE", "DB_NAME", "Database", "SchemaTooNew", "migrate", "schema_key",
           "schema_versions"]
DB_NAME = "state.db"
BUSY_TIMEOUT_S = 5.0  # how long a read or write waits for another holder of SQLite's lock
BUSY_TIMEOUT_ENV = "SCOREGATE_STATE_BUSY_TIMEOUT_S"  # overrides BUSY_TIMEOUT_S
# SQLite's primary result codes (`sqlite3.Error.sqlite_errorcode & 0xFF`) that are not bugs
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 10, 11, 13, 14, 26

_META = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('revision', 0);
"""
_CORE_V1 = """
CREATE TABLE IF NOT EXISTS endpoints (
    name TEXT PRIMARY KEY, spec TEXT NOT NULL, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS deployments (
    endpoint TEXT NOT NULL, name TEXT NOT NULL, spec TEXT NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (endpoint, name));
CREATE TABLE IF NOT EXISTS secrets (
    endpoint TEXT PRIMARY KEY, primary_key TEXT NOT NULL, secondary_key TEXT NOT NULL,
    token_secret BLOB NOT NULL);
"""
# 2: the events outbox; 3: each deployment's provisioning state (`provisioning.py`; rows
# absent mean Succeeded).
CORE = StoreExtension("core", (Migration(1, _CORE_V1), Migration(2, outbox.CREATE_TABLE),
                               Migration(3, provisioning.TABLE_SQL)))


class Database:
    """One connection to `home/state.db`, shared by the threads of a process under a lock."""

    def __init__(self, home: Path, extensions: tuple[StoreExtension, ...] = ()) -> None:
        self.path = home / DB_NAME
        try:
            _create_private(home, self.path)
        except OSError as exc:
            raise StateUnavailable(f"cannot create or open {self.path} ({exc.strerror}); make "
                                   "the state folder writable for this user") from exc
        self._lock = threading.Lock()
        self._commit_listeners: list[Callable[[], None]] = []
        with translated_errors(self.path):
            self._conn = sqlite3.connect(self.path, timeout=busy_timeout_s(),
                                         isolation_level=None, check_same_thread=False)
        try:
            with translated_errors(self.path):
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=FULL")
            with self.write() as conn:
                migrate(conn, (CORE, *extensions))
        except BaseException:
            self._conn.close()
            raise

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A `BEGIN IMMEDIATE` transaction: committed if the block returns, else rolled back."""
        with self._transaction("BEGIN IMMEDIATE") as conn:
            yield conn
        for listener in tuple(self._commit_listeners):
            listener()

    def on_commit(self, listener: Callable[[], None]) -> None:
        """Call `listener` (in the writing thread, after the lock is released) whenever a
        write transaction commits: how the outbox's reader learns of new events without
        polling. It must be quick and thread-safe (e.g. `loop.call_soon_threadsafe`)."""
        self._commit_listeners.append(listener)

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query in the block sees the same committed state."""
        with self._transaction("BEGIN") as conn:
            yield conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def _transaction(self, begin: str) -> Iterator[sqlite3.Connection]:
        with self._lock, translated_errors(self.path):
            self._conn.execute(begin)
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise


def busy_timeout_s() -> float:
    """BUSY_TIMEOUT_S, or the environment's override (a positive number of seconds)."""
    text = os.environ.get(BUSY_TIMEOUT_ENV, "").strip()
    try:
        value = float(text) if text else BUSY_TIMEOUT_S
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise StateUnavailable(f"{BUSY_TIMEOUT_ENV} must be a positive number of seconds, "
                               f"got {text!r}")
    return value


@contextlib.contextmanager
def translated_errors(path: Path) -> Iterator[None]:
    """SQLite's faults of the state folder as errors that say what happened and what to do
    (the admin API answers them 503/507, `serve` prints them): a lock held past the wait, a
    read-only or full folder, a corrupt file. Anything else (a bug) propagates unchanged."""
    try:
        yield
    except sqlite3.Error as exc:
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
        if code in (_BUSY, _LOCKED):
            raise StateUnavailable(
                f"state store busy: another process holds the lock on {path} (waited "
                f"{busy_timeout_s():g} s, {BUSY_TIMEOUT_ENV}); retry") from exc
        if code in (_READONLY, _CANTOPEN):
            raise StateUnavailable(
                f"state folder {path.parent} is read-only or cannot be opened ({exc}); make it "
                "writable for this user, then retry") from exc
        if code == _FULL:
            raise StateFull(f"state folder {path.parent} is full ({exc}); free space, "
                            "then retry") from exc
        if code == _IOERR:
            raise StateUnavailable(f"state folder {path.parent} failed a read or write "
                                   f"({exc}); check its disk, then retry") from exc
        if code in (_CORRUPT, _NOTADB):
            raise StateCorrupt(
                f"{path} is corrupt or not a scoregate state database ({exc}); restore it "
                f"from a backup, or move it aside (mv {path} {path}.corrupt) to start with "
                "an empty store (new endpoint keys)") from exc
        raise


def schema_key(extension: StoreExtension) -> str:
    """`schema` for the core tables (the key databases have always had), else per feature."""
    return "schema" if extension is CORE else f"schema:{extension.name}"


def schema_versions(conn: sqlite3.Connection) -> dict[str, int]:
    rows = conn.execute("SELECT key, value FROM meta WHERE key LIKE 'schema%'")
    return {str(key): int(value) for key, value in rows}


def migrate(conn: sqlite3.Connection, extensions: tuple[StoreExtension, ...]) -> None:
    """Inside the caller's write transaction: brings every extension's tables to its version,
    so a crash mid-way leaves the database as it was."""
    _execute(conn, _META)
    versions = schema_versions(conn)
    for extension in extensions:
        key = schema_key(extension)
        current = versions.get(key, 0)
        if current > extension.version:
            raise SchemaTooNew(
                f"{key} of this state database is version {current}, newer than this scoregate "
                f"knows ({extension.version}); use the scoregate that wrote it, or another "
                f"SCOREGATE_HOME")
        for migration in extension.migrations[current:]:
            _execute(conn, migration.sql)
        conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                     "SET value = excluded.value", (key, extension.version))


def _execute(conn: sqlite3.Connection, script: str) -> None:
    """`executescript` would commit the open transaction, so statements run one by one."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _create_private(home: Path, path: Path) -> None:
    if not home.exists():
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(home, 0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
