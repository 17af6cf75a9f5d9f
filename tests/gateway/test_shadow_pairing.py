"""Sampling, pairing and the pending bound of gateway/shadow/pairing.py, without processes."""

from __future__ import annotations

import asyncio

from gateway.shadow.pairing import ComparisonReport, Comparisons
from gateway.shadow.rules import CompareSettings


def test_sampling_and_pending_bound() -> None:
    async def run() -> tuple[int, ComparisonReport]:
        comparisons = Comparisons(CompareSettings(sample_percent=30, max_pending=20), False)
        pairings = [comparisons.start("e", "d", f"r{i}", i / 100) for i in range(100)]
        started = [p for p in pairings if p is not None]
        for pairing in started:
            pairing.live(200, b"[1]")
            pairing.shadow(200, b"[2]")
        await asyncio.sleep(0)
        return len(started), comparisons.report("e", "d")

    started, result = asyncio.run(run())
    assert started == 20  # 30 sampled of 100 draws, at most 20 waiting at once
    assert result.skipped == 10
    assert result.counts["mismatch"] == 20 and result.memory_bytes == 20 * 6
    assert result.memory_bytes <= result.memory_limit_bytes


def test_pairing_without_bodies_and_expiry() -> None:
    async def run() -> ComparisonReport:
        comparisons = Comparisons(CompareSettings(), False)
        failed = comparisons.start("e", "d", "r1", 0.0)
        assert failed is not None
        failed.shadow(None, b"")  # both sides failed: nothing was held
        failed.live(None, b"")
        orphan = comparisons.start("e", "d", "r2", 0.0)
        assert orphan is not None
        orphan.live(200, b"[1]")  # its shadow never answers
        orphan.expire()  # what the LIVE_WAIT_S timer does
        orphan.shadow(200, b"[1]")  # too late: ignored
        await asyncio.sleep(0)
        return comparisons.report("e", "d")

    result = asyncio.run(run())
    assert result.counts == {"match": 0, "mismatch": 0, "shadow_error": 1, "incomparable": 1}
    assert result.memory_bytes == 0
