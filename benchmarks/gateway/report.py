"""Medians per (case, payload, target), the ratios the issue asks for, and the targets check;
printed as tables and saved as JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.common.stats import difference, median, ratio
from benchmarks.gateway.measure import Sample

CPU_TARGET_US = 200.0
P50_ADDED_TARGET_MS = 1.0
MIRROR_P99_TARGET = 1.15
Row = dict[str, Any]


def summarize(samples: Sequence[Sample]) -> dict[tuple[str, str, str], Row]:
    groups: dict[tuple[str, str, str], list[Sample]] = {}
    for sample in samples:
        groups.setdefault((sample.case, sample.payload, sample.target), []).append(sample)
    return {key: {
        "runs": len(group),
        "throughput": median(s.throughput for s in group),
        "p50_ms": median(s.p50_ms for s in group),
        "p99_ms": median(s.p99_ms for s in group),
        "cpu_us_per_request": median(s.cpu_us_per_request for s in group),
        "rss_mb": median(s.rss_mb for s in group),
        "errors": sum(s.errors for s in group),
        "offered_rate": group[0].offered_rate,
    } for key, group in groups.items()}


def comparisons(summary: dict[tuple[str, str, str], Row]) -> list[Row]:
    """scoregate against nginx and direct, for every case and payload with all three."""
    rows = []
    for case, payload in sorted({(c, p) for c, p, _ in summary}):
        pairs = [("scoregate", "nginx"), ("scoregate", "direct"),
                 ("scoregate:mirror", "scoregate"), ("nginx:mirror", "nginx"),
                 ("scoregate:mirror", "nginx:mirror")]
        for mine, other in pairs:
            a, b = summary.get((case, payload, mine)), summary.get((case, payload, other))
            if a is None or b is None:
                continue
            rows.append({"case": case, "payload": payload, "compare": f"{mine} / {other}",
                         "throughput": ratio(a["throughput"], b["throughput"]),
                         "p50": ratio(a["p50_ms"], b["p50_ms"]),
                         "p99": ratio(a["p99_ms"], b["p99_ms"]),
                         "cpu": ratio(a["cpu_us_per_request"], b["cpu_us_per_request"]),
                         "p50_added_ms": difference(a["p50_ms"], b["p50_ms"])})
    return rows


def targets_check(summary: dict[tuple[str, str, str], Row], notes: dict[str, Any]) -> list[Row]:
    checks = []
    for (case, payload, target), row in sorted(summary.items()):
        if target == "scoregate" and case in ("saturation", "half"):
            checks.append(_check(f"gateway CPU per request, {case}, {payload}",
                                 row["cpu_us_per_request"], CPU_TARGET_US, "µs"))
        if target == "scoregate" and case == "half":
            direct = summary.get((case, payload, "direct"), {})
            checks.append(_check(f"p50 added over direct at half saturation, {payload}",
                                 difference(row["p50_ms"], direct.get("p50_ms")),
                                 P50_ADDED_TARGET_MS, "ms"))
        if target == "scoregate:mirror" and case.startswith("mirror"):
            base = summary.get((case, payload, "scoregate"), {}).get("p99_ms")
            checks.append(_check(f"p99 with mirror / without, {case}, {payload}",
                                 ratio(row["p99_ms"], base), MIRROR_P99_TARGET, "×"))
        if checks and checks[-1]["met"] is not None and target.startswith("scoregate"):
            checks[-1].update(_paced_validity(summary, case, payload))
    mirror = notes.get("mirror", {})
    before, after = mirror.get("scoregate_rss_mb_before"), mirror.get("scoregate_rss_mb_after")
    if before is not None and after is not None:
        checks.append({"check": "gateway RSS during the mirror runs (before → after)",
                       "value": f"{before:.1f} → {after:.1f} MB", "target": "flat",
                       "met": after <= before * 1.10 + 5})
    return checks


def _paced_validity(summary: dict[tuple[str, str, str], Row], case: str, payload: str) -> Row:
    """A paced check means nothing when scoregate fell short of the offered rate (the machine
    was busier than when saturation was measured): mark it unknown instead of failed."""
    short = [f"{target} {row['throughput']:.0f} of {row['offered_rate']:.0f} req/s"
             for (c, p, target), row in summary.items()
             if (c, p) == (case, payload) and target.startswith("scoregate")
             and row["offered_rate"] and row["throughput"] < 0.95 * row["offered_rate"]]
    if not short:
        return {}
    return {"met": None, "value": f"offered rate not reached ({'; '.join(short)})"}


def _check(name: str, value: float | None, limit: float, unit: str) -> Row:
    shown = "n/a" if value is None else f"{value:.2f} {unit}"
    return {"check": name, "value": shown, "target": f"≤ {limit:g} {unit}",
            "met": None if value is None else value <= limit}


def print_report(summary: dict[tuple[str, str, str], Row], compared: list[Row],
                 checks: list[Row], notes: dict[str, Any]) -> None:
    print()
    print(_table(["case", "payload", "target", "req/s", "p50 ms", "p99 ms", "CPU µs/req",
                  "RSS MB", "errors", "offered/s"],
                 ([case, payload, target, _f(r["throughput"], 0), _f(r["p50_ms"], 2),
                   _f(r["p99_ms"], 2), _f(r["cpu_us_per_request"], 0), _f(r["rss_mb"], 1),
                   str(r["errors"]), _f(r["offered_rate"] or None, 0)]
                  for (case, payload, target), r in summary.items())))
    print()
    print(_table(["case", "payload", "ratio", "req/s", "p50", "p99", "CPU", "p50 +ms"],
                 ([r["case"], r["payload"], r["compare"], _f(r["throughput"], 2),
                   _f(r["p50"], 2), _f(r["p99"], 2), _f(r["cpu"], 1), _f(r["p50_added_ms"], 2)]
                  for r in compared)))
    if "mirror" in notes:
        print()
        print("mirror:", json.dumps(notes["mirror"], sort_keys=True))
    print()
    print(_table(["target check", "measured", "target", "met"],
                 ([c["check"], c["value"], c["target"],
                   {True: "yes", False: "NO", None: "?"}[c["met"]]] for c in checks)))


def save(path: Path, samples: Sequence[Sample], summary: dict[tuple[str, str, str], Row],
         compared: list[Row], checks: list[Row], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        **meta,
        "summary": [{"case": c, "payload": p, "target": t, **row}
                    for (c, p, t), row in summary.items()],
        "comparisons": compared,
        "targets_check": checks,
        "samples": [asdict(s) for s in samples],
    }, indent=2, ensure_ascii=False))


def _f(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _table(header: list[str], rows: Iterable[list[str]]) -> str:
    body = [header, *rows]
    widths = [max(len(row[i]) for row in body) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip()
             for row in body]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
