"""Parsers fed what tests/control_plane does not try: raw bytes on disk (not UTF-8, BOMs,
NULs), YAML bombs and deep nesting, traffic text in any alphabet. Only ConfigError or
ValidationError may come out, in bounded time."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from control_plane.errors import ConfigError, ValidationError
from control_plane.specs.loader import load_file
from control_plane.specs.validation import validate_mirror

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
PREFIXES = [b"", b"\xef\xbb\xbf", b"\xff\xfe", b"name: blue\nendpoint_name: ep-one\n",
            b"name: ep-one\nauth_mode: key\n"]


@FUZZ
@given(prefix=st.sampled_from(PREFIXES), raw=st.binary(max_size=300))
def test_raw_bytes_on_disk_give_only_config_errors(tmp_path: Path, prefix: bytes,
                                                   raw: bytes) -> None:
    path = tmp_path / "fuzz.yml"
    path.write_bytes(prefix + raw)
    try:
        load_file(path)
    except ConfigError as error:
        assert str(path) in str(error)


@pytest.mark.parametrize("text", [
    # a billion laughs: aliases that expand to 10^9 items if followed blindly
    "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10) + "]\n"
        for i in range(8)) + "name: i\n",
    "name: " + "[" * 5000 + "]" * 5000 + "\n",
    "name: blue\nendpoint_name: ep-one\ntags: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
    "name: blue\nendpoint_name: ep-one\ndescription: " + "x" * 2_000_000 + "\n",
])
def test_yaml_bombs_are_refused_quickly(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bomb.yml"
    path.write_text(text)
    started = time.process_time()
    with pytest.raises(ConfigError):
        load_file(path)
    baseline_started = time.process_time()
    with pytest.raises(ConfigError):
        load_file(tmp_path / "missing.yml")
    baseline = time.process_time() - baseline_started
    assert time.process_time() - started < 200 * max(baseline, 0.01)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=5) | st.integers(), st.integers() | st.floats() |
                       st.text(max_size=3) | st.none() | st.lists(st.integers()), max_size=3),
       st.dictionaries(st.text(max_size=5), st.integers(-5, 105), max_size=3))
def test_mirror_of_any_shape_gives_only_validation_errors(mirror: object,
                                                          traffic: dict[str, int]) -> None:
    try:
        validate_mirror(mirror, ["blue", "green"], traffic)
    except ValidationError as error:
        assert error.rule.startswith("mirror") or error.rule.startswith("traffic")
