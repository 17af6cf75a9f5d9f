from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.stack import Stack, start_stack
from tests.support.processes import ProcessGroup


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One fault backend and one `scoregate serve` shared by the tests of a module; a module
    may set SERVE_FLAGS (extra `serve` arguments)."""
    tmp = tmp_path_factory.mktemp("reliability")
    with ProcessGroup(tmp / "process-logs") as group:
        yield start_stack(group, tmp, tuple(getattr(request.module, "SERVE_FLAGS", ())))
