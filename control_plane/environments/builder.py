"""Builds an environment with uv, once per key, into `<home>/environments/<key>/`.

A build happens in `.build-<key>/` under the key's lock (`locks.py`): `uv venv` on an installed
interpreter, `uv pip install` of the requirements plus the scoring server's own, a copy of
`scoring_servers/` into the environment's site-packages (so the environment runs the server
without scoregate's tree), an import check of the server, then `ready.json` is written last,
everything is synced, and the folder is renamed into place. A folder at `<key>/` is therefore
always complete; a crash leaves only `.build-<key>/`, which the next build of that key or
`recover()` removes. Another builder asking for the same key waits on the lock and then finds
the environment ready.

Why uv rather than `python -m venv` + pip: see docs/environments.md (benchmarks/environments).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from control_plane.environments import locks
from control_plane.environments.interpreters import Interpreter
from control_plane.environments.key import (
    SERVER_REQUIREMENTS,
    environment_key,
    server_root,
    server_sources,
    server_version,
)
from control_plane.environments.progress import Progress, ProgressCallback, read_line
from control_plane.errors import ScoregateError
from control_plane.home import fsync_folder, write_atomically

READY = "ready.json"
REQUIREMENTS = "scoregate-requirements.txt"
SERVER_CHECK = "scoring_servers.azureml.server"  # what a deployment's instance imports first
BUILD_TIMEOUT_S = 1800.0
_PREFIX = ".build-"
_PR_SET_PDEATHSIG = 1


class BuildFailed(ScoregateError):
    """uv (or the server check) refused: `message` carries its own words, `log` the full log."""

    status = 422

    def __init__(self, key: str, message: str, log: Path) -> None:
        super().__init__(message)
        self.key = key
        self.log = log


@dataclass(frozen=True)
class BuiltEnvironment:
    key: str
    path: Path
    ready: Mapping[str, Any]  # the content of ready.json
    built_now: bool  # False: it was there already (or another builder made it meanwhile)

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


class Builder:
    """`root` is `<home>/environments`; `cache_dir` uv's cache (`<home>/uv-cache` in serve)."""

    def __init__(self, root: Path, cache_dir: Path, uv: Path | None = None,
                 server: Path | None = None, timeout_s: float = BUILD_TIMEOUT_S) -> None:
        self.root = root
        self.cache_dir = cache_dir
        self.uv = uv or _find_uv()
        self.server = server or server_root()
        self.server_version = server_version(self.server)
        self.timeout_s = timeout_s

    def key_for(self, interpreter: Interpreter, requirements: Sequence[str]) -> str:
        return environment_key(interpreter.version_text, requirements, self.server_version)

    def log_path(self, key: str) -> Path:
        return self.root / f"{key}.log"

    def lock_path(self, key: str) -> Path:
        return self.root / f"{key}.lock"

    def find(self, key: str) -> BuiltEnvironment | None:
        """The ready environment of `key`, or None (one stat and one small read)."""
        try:
            ready = json.loads((self.root / key / READY).read_text())
        except (OSError, ValueError):
            return None
        return BuiltEnvironment(key, self.root / key, ready, built_now=False)

    def build(self, interpreter: Interpreter, requirements: Sequence[str],
              on_progress: ProgressCallback | None = None) -> BuiltEnvironment:
        """The ready environment for these inputs, building it if no one has; raises
        `BuildFailed` with uv's message. Blocking: run it in a thread from async code."""
        key = self.key_for(interpreter, requirements)
        found = self.find(key)
        if found:
            return found
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        with locks.held(self.lock_path(key)):
            found = self.find(key)  # built by the holder we waited for
            if found:
                return found
            return self._build_locked(key, interpreter, requirements, on_progress or _ignore)

    def recover(self) -> list[Path]:
        """Removes the temporary folders of builds that died (whose key nobody holds)."""
        removed: list[Path] = []
        if not self.root.is_dir():
            return removed
        for folder in sorted(self.root.glob(f"{_PREFIX}*")):
            key = folder.name.removeprefix(_PREFIX)
            with locks.held(self.lock_path(key), wait=False) as mine:
                if mine and folder.exists():
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder)
        return removed

    # Under the key's lock ----------------------------------------------------------------

    def _build_locked(self, key: str, interpreter: Interpreter, requirements: Sequence[str],
                      on_progress: ProgressCallback) -> BuiltEnvironment:
        temp = self.root / f"{_PREFIX}{key}"
        shutil.rmtree(temp, ignore_errors=True)  # a build that died holding this lock
        started = time.monotonic()
        with open(self.log_path(key), "w", encoding="utf-8") as log:
            run = _Runner(key, interpreter, self.uv, self.cache_dir, log, self.log_path(key),
                          self.timeout_s)
            try:
                timings = self._steps(run, temp, interpreter, requirements, on_progress)
                packages = run.output([self.uv, "pip", "freeze", "--python",
                                       str(temp / "bin" / "python")]).split()
                total = round(time.monotonic() - started, 3)
                ready: dict[str, Any] = {
                    "key": key, "interpreter": str(interpreter.path),
                    "python": interpreter.version_text, "requirements": list(requirements),
                    "server_version": self.server_version,
                    "server_requirements": list(SERVER_REQUIREMENTS),
                    "packages": packages, "size_bytes": disk_usage(temp),
                    "timings_s": {**timings, "total": total},
                    "built_at": time.time(),
                }
                _publish(temp, self.root / key, ready)
            except BaseException:
                shutil.rmtree(temp, ignore_errors=True)
                raise
            log.write(f"ready in {total} s\n")
        on_progress(Progress("ready", len(packages), str(self.root / key)))
        return BuiltEnvironment(key, self.root / key, ready, built_now=True)

    def _steps(self, run: _Runner, temp: Path, interpreter: Interpreter,
               requirements: Sequence[str], on_progress: ProgressCallback) -> dict[str, float]:
        timings: dict[str, float] = {}
        clock = time.monotonic()
        on_progress(Progress("creating", None, f"Python {interpreter.version_text}"))
        run.stream([self.uv, "venv", "--relocatable", "--python", str(interpreter.path),
                    str(temp)], _ignore)
        timings["venv"], clock = round(time.monotonic() - clock, 3), time.monotonic()
        wanted = temp / REQUIREMENTS
        wanted.write_text("".join(f"{r}\n" for r in (*requirements, *SERVER_REQUIREMENTS)))
        on_progress(Progress("resolving", None, f"{len(requirements)} requirement(s)"))
        count: list[int | None] = [None]

        def phase(line: str) -> None:
            progress = read_line(line, count[0])
            if progress:
                count[0] = progress.packages
                on_progress(progress)

        # bytecode now, as pip does: else the first instance start compiles every module
        # (18 s for mlflow + scikit-learn) and a read-only environment never keeps it
        run.stream([self.uv, "pip", "install", "--compile-bytecode", "--python",
                    str(temp / "bin" / "python"), "-r", str(wanted)], phase)
        timings["install"], clock = round(time.monotonic() - clock, 3), time.monotonic()
        on_progress(Progress("checking", count[0], f"import {SERVER_CHECK}"))
        site = Path(run.output([str(temp / "bin" / "python"), "-I", "-c",
                                "import sysconfig; print(sysconfig.get_paths()['purelib'])"]))
        copy_server(self.server, site / self.server.name)
        run.stream([str(temp / "bin" / "python"), "-I", "-c", f"import {SERVER_CHECK}"], _ignore)
        timings["server"] = round(time.monotonic() - clock, 3)
        return timings


def copy_server(source: Path, target: Path) -> None:
    """The scoring server's sources only (no caches), so the environment holds the exact
    version its key names."""
    for path in server_sources(source):
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)


def disk_usage(folder: Path) -> int:
    """Bytes of the files under `folder` (as `du` counts them, each hard link once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            try:
                stat = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_blocks * 512
    return total


class _Runner:
    """Runs the build's commands: output to the build log, uv's error into `BuildFailed`."""

    def __init__(self, key: str, interpreter: Interpreter, uv: Path, cache_dir: Path,
                 log: IO[str], log_path: Path, timeout_s: float) -> None:
        self.key, self.uv, self.log, self.log_path = key, uv, log, log_path
        self.interpreter = interpreter
        self.deadline = time.monotonic() + timeout_s
        self.env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1",
                    "UV_CACHE_DIR": str(cache_dir), "NO_COLOR": "1"}
        self.env.pop("VIRTUAL_ENV", None)
        self.env.pop("PYTHONPATH", None)  # the environment must work on its own

    def stream(self, args: Sequence[str | Path], on_line: Callable[[str], None]) -> None:
        self.log.write(f"$ {' '.join(map(str, args))}\n")
        self.log.flush()
        lines: list[str] = []
        proc = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=self.env,
                                cwd=self.log_path.parent, preexec_fn=_die_with_builder)
        timer = threading.Timer(max(0.0, self.deadline - time.monotonic()), proc.kill)
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                self.log.write(line)
                self.log.flush()
                on_line(line)
            code = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if code != 0:
            self.log.write(f"exit status {code}\n")
            self.log.flush()
            raise BuildFailed(self.key, self._message(args, lines, code), self.log_path)

    def output(self, args: Sequence[str | Path]) -> str:
        self.log.write(f"$ {' '.join(map(str, args))}\n")
        done = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                              env=self.env, cwd=self.log_path.parent, check=False,
                              timeout=max(1.0, self.deadline - time.monotonic()))
        self.log.write(done.stdout + done.stderr)
        self.log.flush()
        if done.returncode != 0:
            raise BuildFailed(self.key, self._message(args, done.stderr.splitlines(True),
                                                      done.returncode), self.log_path)
        return done.stdout.strip()

    def _message(self, args: Sequence[str | Path], lines: list[str], code: int) -> str:
        program = Path(str(args[0])).name
        what = f"{program} {args[-1]}" if program == "python" else f"{program} {args[1]} {args[2]}"
        if code < 0:
            said = f"stopped by signal {signal.Signals(-code).name} (timeout or shutdown)"
        else:
            said = _error_part(lines) or f"exit status {code}"
        python = f"Python {self.interpreter.version_text} at {self.interpreter.path}"
        return (f"environment {self.key} ({python}): `{what}` failed: {said}\n"
                f"(full log: {self.log_path})")


def _error_part(lines: list[str]) -> str:
    """uv's own message: from its `error:` line to the end; else the last lines (a traceback's
    last line says what failed)."""
    text = [line.rstrip() for line in lines if line.strip()]
    for index, line in enumerate(text):
        if line.startswith("error:") or line.lstrip().startswith("×"):
            return "\n".join(text[index:])
    return "\n".join(text[-4:])


def _publish(temp: Path, final: Path, ready: Mapping[str, Any]) -> None:
    """ready.json last, everything synced, then one rename: `final` is complete or absent."""
    write_atomically(temp / READY, json.dumps(ready, indent=2).encode() + b"\n", mode=0o644)
    os.sync()
    os.rename(temp, final)
    fsync_folder(final.parent)


def _find_uv() -> Path:
    import uv  # the PyPI package that ships uv's binary

    return Path(uv.find_uv_bin())


def _die_with_builder() -> None:
    """uv must not outlive a builder killed mid-build (it would write into a folder the next
    build removes)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _ignore(_: object) -> None:
    return None
