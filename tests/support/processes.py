"""Start real processes for tests, and make sure none outlives its test.

Each process gets its own process group, so a test can stop it together with every child it
started (scoring-server instances of a gateway, workers of a server). `ProcessGroup` is a
context manager: leaving it, normally or by an exception, sends SIGTERM, waits, then SIGKILL.
Should pytest itself die (killed, or ended by pytest-timeout's thread method), the kernel
sends each process it started SIGTERM (`die_with_pytest`), so nothing is left behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from control_plane.instances.launch import die_with_parent, signal_group

REPO_ROOT = Path(__file__).resolve().parents[2]


def die_with_pytest() -> Callable[[], None] | None:
    """A preexec_fn asking the kernel to SIGTERM the child when pytest dies. The signal
    follows the thread that forked, so it is only asked for from the main thread (which
    lives as long as pytest); children started from other threads rely on the group."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return die_with_parent(signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float = 30.0, interval: float = 0.05,
               what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= int(response.status) < 300
    except (OSError, urllib.error.URLError):
        return False


@dataclass
class Started:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class ProcessGroup:
    """Processes started by one test; all are stopped (with their children) on exit."""

    log_dir: Path
    started: list[Started] = field(default_factory=list)

    def start(self, args: Sequence[str], env: Mapping[str, str] | None = None,
              cwd: Path | None = None, name: str = "proc",
              pass_fds: Sequence[int] = ()) -> Started:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}-{len(self.started)}.log"
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT)] + [p for p in [full_env.get("PYTHONPATH")] if p])
        full_env["PYTHONUNBUFFERED"] = "1"
        if env:
            full_env.update(env)
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(list(args), env=full_env, cwd=cwd, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    pass_fds=tuple(pass_fds), preexec_fn=die_with_pytest())
        started = Started(proc, log_path)
        self.started.append(started)
        return started

    def python(self, *args: str, **kwargs: object) -> Started:
        return self.start([sys.executable, *args], **kwargs)  # type: ignore[arg-type]

    def stop(self, started: Started, sig: int = signal.SIGTERM,
             timeout: float = 15.0) -> int | None:
        proc = started.proc
        if proc.poll() is None:
            signal_group(proc.pid, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        signal_group(proc.pid, signal.SIGKILL)  # children that outlived their parent
        try:
            return proc.wait(5)
        except subprocess.TimeoutExpired:
            return None

    def stop_all(self) -> None:
        for started in reversed(self.started):
            self.stop(started)

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
