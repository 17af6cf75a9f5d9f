"""Shadow comparison reports of the workers, summed: each worker compares the mirror copies
it sent itself, so the fleet's report adds the counts, skips and memory of all of them and
keeps the newest mismatching pairs of any."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

from gateway.shadow.pairing import ComparisonReport, MismatchPair, agreement_rate
from gateway.shadow.rules import OUTCOMES, CompareSettings


def report_to_wire(report: ComparisonReport) -> dict[str, Any]:
    return {
        "endpoint": report.endpoint,
        "deployment": report.deployment,
        "counts": report.counts,
        "skipped": report.skipped,
        "memory_bytes": report.memory_bytes,
        "memory_limit_bytes": report.memory_limit_bytes,
        "last_mismatches": [asdict(pair) for pair in report.last_mismatches],
    }


def merge_reports(endpoint: str, deployment: str, settings: CompareSettings,
                  reports: Iterable[Mapping[str, Any]]) -> ComparisonReport:
    counts = dict.fromkeys(OUTCOMES, 0)
    skipped = memory = limit = 0
    pairs: list[MismatchPair] = []
    for report in reports:
        for outcome, count in report["counts"].items():
            counts[outcome] = counts.get(outcome, 0) + int(count)
        skipped += int(report["skipped"])
        memory += int(report["memory_bytes"])
        limit += int(report["memory_limit_bytes"])
        pairs.extend(MismatchPair(**pair) for pair in report["last_mismatches"])
    pairs.sort(key=lambda pair: pair.at, reverse=True)
    if not limit:  # no worker compared anything yet: one worker's budget
        limit = settings.pending_memory_limit + settings.memory_limit_per_deployment
    return ComparisonReport(endpoint, deployment, counts, skipped, agreement_rate(counts),
                            memory, limit, settings, tuple(pairs[:settings.keep_mismatches]))
