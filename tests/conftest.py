from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.support.processes import ProcessGroup


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[ProcessGroup]:
    """Real processes for one test; every one (and its children) is stopped afterwards."""
    with ProcessGroup(tmp_path / "process-logs") as group:
        yield group
