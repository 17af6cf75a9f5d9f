"""The admin API's JSON of a shadow comparison report (`GET .../deployments/{d}/compare`).

The gateway keeps the comparisons (`gateway.ComparisonReport`); the wire format is the admin
API's, so it is rendered here.
"""

from __future__ import annotations

from typing import Any

from gateway import ComparisonReport, MismatchPair


def comparison_json(report: ComparisonReport) -> dict[str, Any]:
    settings = report.settings
    return {
        "endpoint": report.endpoint, "deployment": report.deployment,
        "counts": dict(report.counts), "compared": sum(report.counts.values()),
        "skipped": report.skipped, "agreement_rate": report.agreement_rate,
        "memory_bytes": report.memory_bytes, "memory_limit_bytes": report.memory_limit_bytes,
        "sample_percent": settings.sample_percent,
        "rel_tolerance": settings.rel_tolerance,
        "abs_tolerance": settings.abs_tolerance,
        "max_body_bytes": settings.max_body_bytes,
        "keep_mismatches": settings.keep_mismatches,
        "last_mismatches": [_pair_json(pair) for pair in report.last_mismatches],
    }


def _pair_json(pair: MismatchPair) -> dict[str, Any]:
    return {"request_id": pair.request_id, "at": pair.at,
            "live": {"status": pair.live_status, "body": pair.live_body},
            "shadow": {"status": pair.shadow_status, "body": pair.shadow_body},
            "reason": pair.reason, "relative_difference": pair.relative_difference}
