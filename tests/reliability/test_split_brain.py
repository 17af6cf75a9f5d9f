"""One state directory, one server: a second `serve` on it is refused (naming the first's pid
and URLs) even while the first is still starting, the lock dies with its holder (kill -9), and
a start that cannot bind its port leaves the store as it was."""

from __future__ import annotations

import signal
import socket
import sqlite3
from pathlib import Path

from tests.support.gateway import start_serve
from tests.support.processes import ProcessGroup, Started, wait_until


def _serve(group: ProcessGroup, home: Path, *args: str) -> Started:
    return group.python("-m", "control_plane", "serve", *args, "--port", "0", "--admin-port",
                        "0", "--log-format", "json", env={"SCOREGATE_HOME": str(home)},
                        name="serve")


def _gated_config(tmp: Path) -> Path:
    """An endpoint whose one managed deployment's init() writes `started` then waits for `gate`:
    the server holding it stays in its start, before server.json exists."""
    code, folder = tmp / "code", tmp / "config"
    code.mkdir()
    folder.mkdir()
    (code / "score.py").write_text(
        "import pathlib, time\n\n"
        f"HERE = pathlib.Path({str(tmp)!r})\n\n"
        "def init():\n    (HERE / 'started').touch()\n"
        "    while not (HERE / 'gate').exists():\n        time.sleep(0.05)\n\n"
        "def run(raw_data):\n    return [1]\n")
    (folder / "endpoint.yml").write_text("name: gated\nauth_mode: key\ntraffic: {blue: 100}\n")
    (folder / "blue.yml").write_text(
        f"name: blue\nendpoint_name: gated\n"
        f"code_configuration: {{code: {code}, scoring_script: score.py}}\ninstance_count: 1\n"
        "readiness_probe: {initial_delay: 0, period: 1, timeout: 1, failure_threshold: 300}\n")
    return folder


def test_second_serve_is_refused_while_the_first_starts_and_once_it_serves(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    folder = _gated_config(tmp_path)
    with ProcessGroup(tmp_path / "logs") as group:
        first = _serve(group, home, str(folder))
        wait_until(lambda: (tmp_path / "started").exists() or first.proc.poll() is not None,
                   timeout=90, what="the first server's instance to start")
        assert first.proc.poll() is None, first.log()
        assert not (home / "server.json").exists()  # still starting

        second = _serve(group, home)
        wait_until(lambda: second.proc.poll() is not None, timeout=60,
                   what="the second server to give up")
        assert second.proc.returncode != 0
        assert f"pid {first.proc.pid}" in second.log(), second.log()
        assert "Traceback" not in second.log()

        (tmp_path / "gate").touch()
        wait_until(lambda: (home / "server.json").exists(), timeout=90,
                   what="the first server to finish its start")
        third = _serve(group, home)
        wait_until(lambda: third.proc.poll() is not None, timeout=60,
                   what="the third server to give up")
        info = (home / "server.json").read_text()
        assert f"pid {first.proc.pid}" in third.log()
        admin_url = info.split('"admin_url": "')[1].split('"')[0]
        assert admin_url in third.log(), third.log()
        assert first.proc.poll() is None  # the refused ones never disturbed it


def test_the_lock_goes_with_a_killed_server(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with ProcessGroup(tmp_path / "logs") as group:
        first = start_serve(group, home)
        group.stop(first.started, signal.SIGKILL)
        second = start_serve(group, home)  # waits until it serves; raises if it exited
        assert second.info["pid"] == second.started.proc.pid


def test_a_start_that_cannot_bind_stores_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "endpoint.yml").write_text("name: unbound\nauth_mode: key\n")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = str(taken.getsockname()[1])
        with ProcessGroup(tmp_path / "logs") as group:
            started = group.python("-m", "control_plane", "serve", str(folder), "--port", port,
                                   "--admin-port", "0", env={"SCOREGATE_HOME": str(home)})
            assert started.proc.wait(60) == 1
            assert f"cannot listen on 127.0.0.1:{port}" in started.log()
    finally:
        taken.close()
    if (home / "state.db").exists():
        with sqlite3.connect(home / "state.db") as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
            stored = (list(conn.execute("SELECT name FROM endpoints"))
                      if "endpoints" in tables else [])
        assert stored == []
