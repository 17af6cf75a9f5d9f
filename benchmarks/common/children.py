"""Child processes of a benchmark, each in its own process group, none left behind.

A benchmark starts servers (backends, nginx, scoregate) and load generators. `Children` is a
context manager: leaving it, normally, on an exception, on Ctrl-C or on SIGTERM/SIGHUP
(turned into `SystemExit` by `exit_on_signals`), stops every group it started with SIGTERM,
then SIGKILL. Each child also gets PR_SET_PDEATHSIG, so even a SIGKILLed benchmark takes its
children with it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from control_plane.instances.launch import die_with_parent, signal_group


@dataclass(frozen=True)
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, chars: int = 3000) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - chars))
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def check_alive(self) -> None:
        """Raise with the end of its log if the child has exited (why did the server die?)."""
        if self.popen.poll() is not None:
            raise ChildFailed(f"{self.name} exited with {self.popen.returncode}; "
                              f"end of {self.log_path}:\n{self.log_tail()}")


class ChildFailed(RuntimeError):
    pass


@dataclass
class Children:
    """Every process a benchmark started; all are stopped (with their groups) on exit."""

    log_dir: Path
    started: list[Child] = field(default_factory=list)

    def start(self, args: Sequence[str], name: str, env: Mapping[str, str] | None = None,
              cwd: Path | None = None, log_path: Path | None = None) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        path = log_path or self.log_dir / f"{name}-{len(self.started)}.log"
        full_env = dict(os.environ)
        full_env.update(env or {})
        with open(path, "ab") as log:
            popen = subprocess.Popen(list(args), env=full_env, cwd=cwd, stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True,
                                     preexec_fn=die_with_parent(signal.SIGTERM))
        child = Child(name, popen, path)
        self.started.append(child)
        return child

    def stop(self, child: Child, timeout_s: float = 10.0) -> None:
        if child.popen.poll() is None:
            signal_group(child.pid, signal.SIGTERM)
            try:
                child.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                pass
        signal_group(child.pid, signal.SIGKILL)  # whatever of the group outlived its leader
        try:
            child.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        if child in self.started:
            self.started.remove(child)

    def stop_all(self) -> None:
        for child in reversed(list(self.started)):
            self.stop(child)

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def exit_on_signals() -> None:
    """Turn SIGTERM and SIGHUP into SystemExit, and SIGINT into KeyboardInterrupt even when
    the shell started us with SIGINT ignored (a background job), so `finally` blocks clean up."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout_s: float, what: str,
               interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def http_get(url: str, timeout_s: float = 2.0) -> tuple[int, bytes] | None:
    """(status, body), or None when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()
    except OSError:
        return None
