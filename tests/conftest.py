from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import ProcessGroup


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[ProcessGroup]:
    """Real processes for one test; every one (and its children) is stopped afterwards."""
    with ProcessGroup(tmp_path / "process-logs") as group:
        yield group


# Property tests run the same examples on every run (a red CI must be reproducible), and take
# no per-example deadline: this is a noisy 2-core machine.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("scoregate", derandomize=True, deadline=None,
                                      print_blob=True)
_hypothesis_settings.load_profile("scoregate")
