from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import ProcessGroup

# `scoregate serve` runs its data plane in its own process in every test (and in what the tests
# start: they inherit this), unless a test about workers passes `--workers N` itself;
# SCOREGATE_TEST_WORKERS=2 runs every serve of the suite with 2 workers instead.
os.environ["SCOREGATE_WORKERS"] = os.environ.get("SCOREGATE_TEST_WORKERS", "1")


@pytest.fixture(scope="session", autouse=True)
def shared_environments(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every `scoregate serve` of the session builds deployment environments into one folder
    with one uv cache (both under the session's temporary folder): the bundled example's
    environment is built once per session, not once per test."""
    root = tmp_path_factory.mktemp("shared-environments")
    saved = {name: os.environ.get(name) for name in _SHARED}
    os.environ["SCOREGATE_ENVIRONMENTS"] = str(root / "environments")
    os.environ["SCOREGATE_UV_CACHE"] = str(root / "uv-cache")
    yield root
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


_SHARED = ("SCOREGATE_ENVIRONMENTS", "SCOREGATE_UV_CACHE")


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
