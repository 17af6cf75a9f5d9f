from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import ProcessGroup


@pytest.fixture(scope="module")
def module_processes(
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ProcessGroup, Path]]:
    """Processes shared by the tests of one module (all stopped when the module ends)."""
    tmp = tmp_path_factory.mktemp("gateway")
    with ProcessGroup(tmp / "process-logs") as group:
        yield group, tmp
