"""The comparison rules of gateway/shadow/rules.py, judged on pairs of answers (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import SettingsError
from gateway.shadow.rules import CompareSettings, Side, Verdict, compare_answers


def judge(live: bytes | None, shadow: bytes | None, live_status: int | None = 200,
          shadow_status: int | None = 200, **settings: Any) -> Verdict:
    return compare_answers(Side(live_status, live or b""), Side(shadow_status, shadow or b""),
                           CompareSettings(**settings))


@pytest.mark.parametrize(("live", "shadow", "outcome"), [
    (b'{"predictions": [1.5, 2.0]}', b'{"predictions": [1.5, 2.0000001]}', "match"),
    (b'{"predictions": [1.5, 2.0]}', b'{"predictions": [1.5, 2.1]}', "mismatch"),
    (b'[1, 2]', b'[1.0, 2.0]', "match"),  # the same numbers, whatever their JSON spelling
    (b'[3, 2]', b'[4, 2]', "mismatch"),  # integers (class labels) are exact
    (b'["cat", "dog"]', b'["cat", "cow"]', "mismatch"),
    (b'[[0.2, 0.8], [0.9, 0.1]]', b'[[0.4, 0.6], [0.7, 0.3]]', "match"),  # same argmax
    (b'[[0.2, 0.8], [0.9, 0.1]]', b'[[0.6, 0.4], [0.9, 0.1]]', "mismatch"),  # label changed
    (b'{"a": 1}', b'{"a": 1, "b": 2}', "mismatch"),
    (b'[1, 2]', b'[1, 2, 3]', "mismatch"),
    (b'[true]', b'[1]', "mismatch"),
    (b'[0.0, 1e-13]', b'[0.0, 3e-13]', "match"),  # within abs_tolerance near zero
    (b'rows: 3', b'rows: 3', "incomparable"),
])
def test_rules(live: bytes, shadow: bytes, outcome: str) -> None:
    assert judge(live, shadow).outcome == outcome


def test_status_rules_and_size_limit() -> None:
    assert judge(b"[1]", None, shadow_status=None).outcome == "shadow_error"
    assert judge(b"[1]", b"oops", shadow_status=500).outcome == "shadow_error"
    assert judge(None, None, 400, 400).outcome == "match"  # both refused the input alike
    assert judge(None, b"[1]", 400, 200).outcome == "mismatch"
    assert judge(None, b"[1]", None, 200).outcome == "incomparable"  # live had no answer
    big = b"[" + b"1," * 40 + b"1]"
    assert judge(big, big, max_body_bytes=50).outcome == "incomparable"
    drift = judge(b"[100.0, -50.0]", b"[101.0, -50.5]", rel_tolerance=1e-3)
    assert drift.relative_difference == pytest.approx(1 / 101)
    assert "$[0]" in drift.reason and "100.0" in drift.reason


@pytest.mark.parametrize("settings", [{"sample_percent": 101}, {"rel_tolerance": -1},
                                      {"max_body_bytes": 0}, {"keep_mismatches": -1}])
def test_settings_that_cannot_work_raise_the_gateway_settings_error(
        settings: dict[str, Any]) -> None:
    with pytest.raises(SettingsError, match="comparison settings"):
        CompareSettings(**settings)
