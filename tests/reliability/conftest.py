from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.reliability.stack import Stack, start_stack
from tests.support.processes import ProcessGroup


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One fault backend and one `scoregate serve` shared by the tests of a module."""
    tmp = tmp_path_factory.mktemp("reliability")
    with ProcessGroup(tmp / "process-logs") as group:
        yield start_stack(group, tmp)
