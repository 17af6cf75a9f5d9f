"""A registry on a real store in the test's own state folder, and model folders to register."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from control_plane.registry import STORE_EXTENSION, ModelRegistry
from control_plane.store.sqlite_store import Store


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def registry(home: Path) -> Iterator[ModelRegistry]:
    store = Store(home, (STORE_EXTENSION,))
    try:
        registry = ModelRegistry(store, home)
        registry.recover()
        yield registry
    finally:
        store.close()


def make_model(folder: Path, files: dict[str, bytes]) -> Path:
    """A folder holding `files` (relative paths); returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for relative, content in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return folder
