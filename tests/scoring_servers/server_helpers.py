"""Start the scoring-script server as a real process and talk plain HTTP to it."""

from __future__ import annotations

import json
import re
import socket
import textwrap
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.processes import ProcessGroup, Started, http_ok, wait_until

LISTENING = re.compile(r"^listening on (http://127\.0\.0\.1:\d+)$", re.MULTILINE)
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class ScoringServer:
    started: Started
    url: str

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: Mapping[str, str] | None = None, timeout: float = 30.0) -> Reply:
        request = urllib.request.Request(self.url + path, data=body, method=method,
                                         headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return Reply(response.status, _lower(response.headers.items()), response.read())
        except urllib.error.HTTPError as error:
            with error:
                return Reply(error.code, _lower(error.headers.items()), error.read())

    def score(self, body: bytes | str, headers: Mapping[str, str] | None = None) -> Reply:
        data = body.encode() if isinstance(body, str) else body
        return self.request("POST", "/score", data, headers)


def _lower(items: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in items}


def write_script(folder: Path, source: str, name: str = "score.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(source))
    return folder


def server_args(code_dir: Path, entry: str = "score.py") -> list[str]:
    return ["-m", "scoring_servers.azureml", "--code", str(code_dir), "--entry", entry]


def start_server(group: ProcessGroup, code_dir: Path, env: Mapping[str, str] | None = None,
                 entry: str = "score.py", extra_args: Sequence[str] = ()) -> ScoringServer:
    """`--port 0`: the URL comes from the `listening on ...` line."""
    started = group.python(*server_args(code_dir, entry), "--port", "0", *extra_args, env=env,
                           name="scoring")
    return ScoringServer(started, wait_ready(started))


def start_server_on_fd(group: ProcessGroup, code_dir: Path,
                       env: Mapping[str, str] | None = None) -> tuple[ScoringServer, socket.socket]:
    """As the supervisor does: bind the socket here, pass its fd down. The caller closes it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    started = group.python(*server_args(code_dir), "--fd", str(sock.fileno()), env=env, name="fd",
                           pass_fds=[sock.fileno()])
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    wait_until(lambda: http_ok(url + "/") or _exited(started), START_TIMEOUT_S, what="readiness")
    if started.proc.poll() is not None:
        raise AssertionError(f"server exited with {started.proc.returncode}:\n{started.log()}")
    return ScoringServer(started, url), sock


def wait_ready(started: Started) -> str:
    """The bound URL once `GET /` answers; fails with the log if the process exits first."""
    found: list[str] = []

    def listening() -> bool:
        match = LISTENING.search(started.log())
        if match:
            found.append(match.group(1))
        return bool(match) or _exited(started)

    wait_until(listening, START_TIMEOUT_S, what="the 'listening on' line")
    if not found:
        raise AssertionError(f"server exited with {started.proc.returncode}:\n{started.log()}")
    wait_until(lambda: http_ok(found[0] + "/"), START_TIMEOUT_S, what="GET / to answer")
    return found[0]


def _exited(started: Started) -> bool:
    return started.proc.poll() is not None
