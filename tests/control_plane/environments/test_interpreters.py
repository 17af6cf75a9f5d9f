from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from control_plane.environments import interpreters
from control_plane.environments.interpreters import (
    Interpreter,
    NoInterpreter,
    PythonRequest,
    choose,
)

PYENV = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def fake_pool(*versions: tuple[int, int, int]) -> list[Interpreter]:
    return [Interpreter(Path(f"/opt/python{v[0]}.{v[1]}"), v) for v in versions]


@pytest.mark.skipif(not (PYENV / "versions").is_dir(), reason="no pyenv versions folder here")
def test_finds_every_pyenv_version_from_the_oldest_supported(
        installed: tuple[Interpreter, ...]) -> None:
    expected = set()
    for folder in (PYENV / "versions").iterdir():
        parts = folder.name.split(".")
        if len(parts) == 3 and all(p.isdigit() for p in parts) and \
                (folder / "bin" / "python").exists():
            version = (int(parts[0]), int(parts[1]), int(parts[2]))
            if version[:2] >= interpreters.OLDEST:
                expected.add(version)
    assert expected, "the pyenv folder has no version to find"
    assert expected <= {i.version for i in installed}
    assert all(i.minor_version >= interpreters.OLDEST for i in installed)
    assert all(i.path.is_absolute() and "shims" not in i.path.parts for i in installed)


def test_probe_reports_the_exact_version() -> None:
    found = interpreters.probe(Path(sys.executable))
    assert found is not None
    assert found.version == tuple(sys.version_info[:3])
    assert interpreters.probe(Path("/bin/true")) is None


def test_exact_minor_wins_with_its_newest_patch() -> None:
    pool = fake_pool((3, 8, 10), (3, 8, 18), (3, 9, 1))
    choice = choose(pool, PythonRequest(3, 8, 5))
    assert choice.interpreter.version == (3, 8, 18)
    assert choice.note is None


def test_nearest_newer_with_a_note_or_refused_when_strict() -> None:
    pool = fake_pool((3, 12, 1), (3, 10, 13), (3, 11, 7))
    choice = choose(pool, PythonRequest(3, 9))
    assert choice.interpreter.version == (3, 10, 13)
    assert choice.note is not None and "3.9" in choice.note and "3.10.13" in choice.note
    with pytest.raises(NoInterpreter, match=r"no Python 3\.9 installed \(strict.*3\.10, 3\.11"):
        choose(pool, PythonRequest(3, 9), strict=True)


def test_nothing_newer_is_refused_naming_what_is_installed() -> None:
    with pytest.raises(NoInterpreter, match=r"no Python 3\.14 .*installed: 3\.8, 3\.12"):
        choose(fake_pool((3, 8, 1), (3, 12, 1)), PythonRequest(3, 14))


def test_no_request_means_the_gateways_own_version() -> None:
    choice = choose(fake_pool((3, 8, 1)), None)
    assert choice.interpreter.minor_version == tuple(sys.version_info[:2])
