"""The scoring server serves on an inherited, listening Unix socket (`--fd N`), as managed
instances get one since issue 10 (no TCP port another local user could reach)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.scoring_servers.server_helpers import server_args, write_script
from tests.support import unix_http
from tests.support.processes import ProcessGroup

SCRIPT = "def init():\n    pass\n\ndef run(raw_data):\n    return {'got': raw_data}\n"


def test_serves_on_an_inherited_unix_socket(processes: ProcessGroup, tmp_path: Path) -> None:
    code = write_script(tmp_path / "code", SCRIPT)
    url = unix_http.serve_on_unix_socket(processes, tmp_path / "s.sock", server_args(code))
    assert f"listening on {url}" in processes.started[-1].log()
    status, body = unix_http.request(url, "POST", "/score", b'{"a": 1}')
    assert status == 200 and json.loads(body) == {"got": '{"a": 1}'}
    assert processes.stop(processes.started[-1], signal.SIGTERM) == 0
