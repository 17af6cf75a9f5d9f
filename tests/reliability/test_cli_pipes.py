"""The CLI's output piped into a reader that has gone (`scoregate ... | head`): a quiet exit
with 141 (128 + SIGPIPE, as a shell reports a cut-off tool), no BrokenPipeError traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support.gateway import RunningGateway, start_serve
from tests.support.processes import ProcessGroup

BROKEN_PIPE = 141


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    tmp = tmp_path_factory.mktemp("pipes")
    folder = tmp / "config"
    folder.mkdir()
    (folder / "endpoint.yml").write_text("name: piped\nauth_mode: key\n")
    with ProcessGroup(tmp / "process-logs") as group:
        yield start_serve(group, tmp / "home", str(folder))


def _into_closed_pipe(gateway: RunningGateway, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI writing into a pipe whose reader closed before it wrote anything."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return subprocess.run([sys.executable, "-m", "control_plane", *args], stdout=writer,
                              stderr=subprocess.PIPE, text=True, env=gateway.env(), timeout=60)
    finally:
        os.close(writer)


@pytest.mark.parametrize("args", [("online-endpoint", "list"),
                                  ("online-endpoint", "show", "-n", "piped", "-o", "table"),
                                  ("online-endpoint", "--help")])
def test_a_reader_gone_is_a_quiet_exit(gateway: RunningGateway, args: tuple[str, ...]) -> None:
    result = _into_closed_pipe(gateway, *args)
    assert result.stderr == ""
    # argparse's help swallows the write error itself and exits 0, which is as quiet
    assert result.returncode == (0 if "--help" in args else BROKEN_PIPE)


def test_head_takes_the_first_line_quietly(gateway: RunningGateway) -> None:
    cli = subprocess.Popen([sys.executable, "-m", "control_plane", "online-endpoint", "list"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=gateway.env())
    try:
        head = subprocess.run(["head", "-n", "1"], stdin=cli.stdout, capture_output=True,
                              timeout=60)
        assert cli.stdout is not None
        cli.stdout.close()
        assert head.stdout.startswith(b"[")
        assert cli.wait(60) in (0, BROKEN_PIPE)
        assert cli.stderr is not None
        assert b"Traceback" not in cli.stderr.read()
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
