"""Shared by the environment tests: one uv cache for the whole session (under pytest's
session temporary folder), so the second build of a package is a copy from the cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from control_plane.environments import interpreters
from control_plane.environments.builder import Builder
from control_plane.environments.interpreters import Interpreter


@pytest.fixture(scope="session")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uv-cache")


@pytest.fixture(scope="session")
def installed() -> tuple[Interpreter, ...]:
    return interpreters.discover()


@pytest.fixture
def builder(tmp_path: Path, uv_cache: Path) -> Builder:
    return Builder(tmp_path / "home" / "environments", uv_cache)


@pytest.fixture
def gateway_python() -> Interpreter:
    """The gateway's own interpreter: always there, whatever else the machine has."""
    return interpreters.current()


def interpreter_of(installed: tuple[Interpreter, ...], minor: tuple[int, int]) -> Interpreter:
    for interpreter in installed:
        if interpreter.minor_version == minor:
            return interpreter
    pytest.skip(f"no Python {minor[0]}.{minor[1]} installed on this machine")
