"""Start and stop: init() before readiness, exit codes, --fd mode, clean stop on SIGTERM."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.scoring_servers.server_helpers import (
    ScoringServer,
    server_args,
    start_server,
    start_server_on_fd,
    wait_ready,
    write_script,
)
from tests.support.processes import ProcessGroup

SLOW_INIT = """
    import pathlib, time

    def init():
        time.sleep(1.0)
        pathlib.Path(__file__).with_name("init-finished").write_text("yes")

    def run(raw_data):
        return "ok"
"""


def test_readiness_does_not_pass_before_init_finished(processes: ProcessGroup,
                                                      code_dir: Path) -> None:
    write_script(code_dir, SLOW_INIT)
    server = start_server(processes, code_dir)  # returns once GET / answered Healthy
    assert (code_dir / "init-finished").read_text() == "yes"
    assert server.score("{}").body == b'"ok"'


def test_init_raising_exits_3_with_the_traceback(processes: ProcessGroup, code_dir: Path) -> None:
    write_script(code_dir, """
        def init():
            raise RuntimeError("model file is corrupt")

        def run(raw_data):
            return 1
    """)
    started = processes.python(*server_args(code_dir), "--port", "0")
    assert started.proc.wait(60) == 3
    log = started.log()
    assert "Traceback (most recent call last)" in log
    assert "RuntimeError: model file is corrupt" in log
    assert "listening on" not in log


def test_script_without_run_exits_3(processes: ProcessGroup, code_dir: Path) -> None:
    write_script(code_dir, "def init():\n    pass\n")
    started = processes.python(*server_args(code_dir), "--port", "0")
    assert started.proc.wait(60) == 3
    assert "does not define a run() function" in started.log()


def test_bad_settings_exit_2_with_a_message(processes: ProcessGroup, code_dir: Path) -> None:
    write_script(code_dir, SLOW_INIT)
    bad_workers = processes.python(*server_args(code_dir), "--port", "0",
                                   env={"WORKER_COUNT": "two"})
    missing = processes.python(*server_args(code_dir, "nothere.py"), "--port", "0")
    assert bad_workers.proc.wait(60) == 2
    assert missing.proc.wait(60) == 2
    assert "WORKER_COUNT must be a whole number, got 'two'" in bad_workers.log()
    assert "nothere.py" in missing.log()


def test_entry_from_environment_and_code_importable_from_any_cwd(
        processes: ProcessGroup, tmp_path: Path, code_dir: Path) -> None:
    write_script(code_dir, "VALUE = 42\n", name="helper_module.py")
    write_script(code_dir, """
        import helper_module

        def init():
            pass

        def run(raw_data):
            return helper_module.VALUE
    """, name="entry.py")
    started = processes.python("-m", "scoring_servers.azureml", "--code", str(code_dir),
                               "--port", "0", env={"AZUREML_ENTRY_SCRIPT": "entry.py"},
                               cwd=tmp_path)
    server = ScoringServer(started, wait_ready(started))
    assert server.score("{}").body == b"42"


def test_serves_on_an_inherited_fd(processes: ProcessGroup, code_dir: Path) -> None:
    write_script(code_dir,
                 "def init():\n    pass\n\ndef run(raw_data):\n    return raw_data[::-1]\n")
    server, sock = start_server_on_fd(processes, code_dir)
    with sock:
        assert server.score("abc").body == b'"cba"'
        assert server.url.endswith(f":{sock.getsockname()[1]}")


def test_sigterm_stops_cleanly_with_exit_0(processes: ProcessGroup, code_dir: Path) -> None:
    write_script(code_dir, "def init():\n    pass\n\ndef run(raw_data):\n    return 1\n")
    server = start_server(processes, code_dir)
    assert server.score("{}").status == 200
    assert processes.stop(server.started, signal.SIGTERM) == 0
