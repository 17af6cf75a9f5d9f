"""The Python interpreters installed on this machine, and which one an environment gets.

Environments are built on interpreters that are already here (on PATH as `python3.X`, and in
pyenv's versions folder); scoregate never downloads one at run time. A request for 3.9 takes a
3.9 when there is one; otherwise the nearest newer minor, with a note for the deployment's
status, unless the request is strict. Versions are asked of each interpreter itself, since a
file name (or a pyenv shim) can lie.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from control_plane.errors import ConfigError, ScoregateError

OLDEST = (3, 8)  # the oldest Python the scoring servers run on
_PROBE = ("import json, sys; print(json.dumps([list(sys.version_info[:3]), sys.executable, "
          "sys.implementation.name]))")
_PROBE_TIMEOUT_S = 20.0
_REQUEST = re.compile(r"^python\s*(?:==|=|>=|~=)?\s*(\d+)\.(\d+)(?:\.(\d+))?(?:\.\*)?\s*$")


@dataclass(frozen=True, order=True)
class PythonRequest:
    """What an environment file asks for: `python=3.8.5` → (3, 8, 5)."""

    major: int
    minor: int
    patch: int | None = None

    @property
    def minor_version(self) -> tuple[int, int]:
        return (self.major, self.minor)

    def __str__(self) -> str:
        return ".".join(str(n) for n in (self.major, self.minor, self.patch) if n is not None)


def parse_python_request(text: str, file: str) -> PythonRequest:
    match = _REQUEST.match(text.strip())
    if not match:
        raise ConfigError(file, "dependencies", f"cannot read the Python version in {text!r}; "
                                                "write it as python=3.X or python=3.X.Y")
    patch = int(match[3]) if match[3] is not None else None
    return PythonRequest(int(match[1]), int(match[2]), patch)


@dataclass(frozen=True)
class Interpreter:
    path: Path  # the real executable (not a shim)
    version: tuple[int, int, int]

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))

    @property
    def minor_version(self) -> tuple[int, int]:
        return (self.version[0], self.version[1])


@dataclass(frozen=True)
class Choice:
    interpreter: Interpreter
    note: str | None  # set when the minor version differs from the request (for the status)


class NoInterpreter(ScoregateError):
    """No installed interpreter can serve a request (scoregate never downloads one)."""

    status = 422


def candidates(environ: Mapping[str, str] | None = None) -> list[Path]:
    """`python3.X` on PATH, then pyenv's `versions/*/bin/python`, in that order."""
    env = os.environ if environ is None else environ
    pyenv = Path(env.get("PYENV_ROOT") or Path(env.get("HOME") or Path.home()) / ".pyenv")
    found: list[Path] = []
    for folder in env.get("PATH", "").split(os.pathsep):
        if folder and Path(folder) != pyenv / "shims":  # pyenv's own folder is read below
            found.extend(sorted(Path(folder).glob("python3.[0-9]*"), key=_name_order))
    found.extend(sorted((pyenv / "versions").glob("*/bin/python")))
    return [p for p in found if re.fullmatch(r"python(3\.\d+)?", p.name) and os.access(p, os.X_OK)]


def probe(path: Path) -> Interpreter | None:
    """Asks the interpreter its version; None if it does not answer as a CPython 3 would."""
    try:
        done = subprocess.run([str(path), "-I", "-c", _PROBE], capture_output=True, text=True,
                              timeout=_PROBE_TIMEOUT_S, check=False)
        version, executable, implementation = json.loads(done.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0 or implementation != "cpython" or not executable:
        return None
    return Interpreter(Path(executable).resolve(), (version[0], version[1], version[2]))


def discover(environ: Mapping[str, str] | None = None) -> tuple[Interpreter, ...]:
    """Every distinct interpreter from `OLDEST` on, newest patch of each minor first."""
    return _distinct(probe(path) for path in candidates(environ))


def current() -> Interpreter:
    """The gateway's own interpreter (the fallback when nothing asks for a version)."""
    info = sys.version_info
    return Interpreter(Path(sys.executable).resolve(), (info[0], info[1], info[2]))


def choose(interpreters: Iterable[Interpreter], request: PythonRequest | None,
           strict: bool = False) -> Choice:
    """The installed interpreter for `request` (None: the gateway's own version)."""
    pool = sorted(interpreters, key=lambda i: i.version, reverse=True)
    if request is None:
        own = current()
        same = [i for i in pool if i.minor_version == own.minor_version]
        return Choice(same[0] if same else own, None)
    wanted = request.minor_version
    exact = [i for i in pool if i.minor_version == wanted]
    if exact:
        return Choice(exact[0], None)
    installed = ", ".join(sorted({f"{i.version[0]}.{i.version[1]}" for i in pool},
                                 key=_version_key)) or "none"
    newer = sorted((i for i in pool if i.minor_version > wanted),
                   key=lambda i: (i.minor_version, tuple(-n for n in i.version)))
    if strict or not newer:
        why = "strict: only that minor version will do" if strict else "none newer either"
        raise NoInterpreter(f"no Python {wanted[0]}.{wanted[1]} installed ({why}); installed: "
                            f"{installed}; scoregate does not download interpreters")
    picked = newer[0]
    return Choice(picked, f"Python {request} asked, no {wanted[0]}.{wanted[1]} installed: using "
                          f"{picked.version_text} (installed: {installed})")


def _distinct(found: Iterable[Interpreter | None]) -> tuple[Interpreter, ...]:
    seen: dict[Path, Interpreter] = {}
    for interpreter in found:
        if interpreter and interpreter.minor_version >= OLDEST:
            seen.setdefault(interpreter.path, interpreter)
    return tuple(sorted(seen.values(), key=lambda i: i.version, reverse=True))


def _name_order(path: Path) -> tuple[int, ...]:
    return _version_key(path.name.removeprefix("python"))


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text))
