"""Faults of the state folder get clear answers: a store locked by another process is a 503
"state store busy" after a bounded wait (not a 60 s stall then a 500); read-only and full are
503/507 with the reason; a corrupt state.db stops the start with a hint, not a traceback; a
missing state.db beside an existing admin token is a loud warning."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from control_plane.errors import StateFull, StateUnavailable
from control_plane.store.database import BUSY_TIMEOUT_ENV, Database
from tests.support.gateway import RunningGateway, start_serve
from tests.support.processes import ProcessGroup

E = "stately"
WAIT_S = 1  # the server's bounded wait; the client allows far more, so a stall fails the test


@pytest.fixture
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningGateway]:
    monkeypatch.setenv(BUSY_TIMEOUT_ENV, str(WAIT_S))
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "endpoint.yml").write_text(f"name: {E}\nauth_mode: key\ntraffic: {{blue: 100}}\n")
    (folder / "blue.yml").write_text(f"name: blue\nendpoint_name: {E}\n"
                                     "urls: [http://127.0.0.1:9/score]\n")
    with ProcessGroup(tmp_path / "process-logs") as group:
        yield start_serve(group, tmp_path / "home", str(folder))


def _admin(gateway: RunningGateway, method: str, path: str, **kwargs: object) -> httpx.Response:
    token = (gateway.home / "admin_token").read_text().strip()
    return httpx.request(method, f"{gateway.admin_url}{path}", timeout=30 * WAIT_S,
                         headers={"Authorization": f"Bearer {token}"}, **kwargs)  # type: ignore[arg-type]


def test_a_store_locked_by_another_process_is_a_503_busy(gateway: RunningGateway) -> None:
    """Another process holds SQLite's write lock (as `sqlite3 state.db` in a shell might): a
    write answers 503 "state store busy" after the bounded wait; reads still answer (WAL)."""
    holder = sqlite3.connect(gateway.home / "state.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("UPDATE meta SET value = value WHERE key = 'revision'")
        answer = _admin(gateway, "PUT", f"/v1/endpoints/{E}/traffic", json={"blue": 100})
        assert answer.status_code == 503, answer.text
        assert "state store busy" in answer.json()["message"]
        assert _admin(gateway, "GET", f"/v1/endpoints/{E}").status_code == 200
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    answer = _admin(gateway, "PUT", f"/v1/endpoints/{E}/traffic", json={"blue": 100})
    assert answer.status_code == 200, answer.text


def test_read_only_and_full_are_unavailable_and_full(tmp_path: Path) -> None:
    """Simulated at the SQLite level (root ignores mode bits, and an immutable WAL's shared
    memory file gives SIGBUS): `query_only` makes SQLite refuse writes as a read-only file
    does (SQLITE_READONLY), `max_page_count` makes it run out of room (SQLITE_FULL)."""
    db = Database(tmp_path)
    try:
        with pytest.raises(StateUnavailable, match="read-only") as busy:
            with db.write() as conn:
                conn.execute("PRAGMA query_only=1")
                conn.execute("INSERT INTO meta (key, value) VALUES ('x', 1)")
        assert busy.value.status == 503
        with db.read() as conn:
            conn.execute("PRAGMA query_only=0")
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count={pages}")
        with pytest.raises(StateFull, match="full") as full:
            with db.write() as conn:
                conn.execute("CREATE TABLE filler (data BLOB)")
                conn.execute("INSERT INTO filler VALUES (zeroblob(1000000))")
        assert full.value.status == 507
    finally:
        db.close()


def _serve_once(home: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    with ProcessGroup(tmp_path / "process-logs") as group:
        started = group.python("-m", "control_plane", "serve", "--port", "0", "--admin-port",
                               "0", env={"SCOREGATE_HOME": str(home)})
        started.proc.wait(60)
        return subprocess.CompletedProcess(started.proc.args, started.proc.returncode,
                                           started.log())


def test_a_corrupt_state_db_stops_the_start_with_a_hint(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "state.db").write_bytes(b"this is not a database, it was overwritten" * 100)
    result = _serve_once(home, tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout
    assert "corrupt" in result.stdout and "backup" in result.stdout and "mv " in result.stdout


def test_a_missing_state_db_beside_a_token_warns_loudly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with ProcessGroup(tmp_path / "process-logs") as group:
        first = start_serve(group, home)
        group.stop(first.started)
    (home / "state.db").unlink()
    with ProcessGroup(tmp_path / "process-logs-2") as group:
        second = start_serve(group, home)
        assert "WARNING" in second.started.log() and "EMPTY store" in second.started.log()
    with ProcessGroup(tmp_path / "process-logs-3") as group:  # a store that exists: no warning
        third = start_serve(group, home)
        assert "EMPTY store" not in third.started.log()


def test_the_busy_wait_must_be_a_positive_number(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BUSY_TIMEOUT_ENV, "soon")
    with pytest.raises(StateUnavailable, match=BUSY_TIMEOUT_ENV):
        Database(tmp_path)
