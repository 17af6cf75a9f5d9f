"""The benchmark's cases. Targets of one comparison run round-robin (run 1 of each, then
run 2 of each, ...) so that drift on a noisy machine hits all of them alike.

1. saturation: c connections as fast as they go, both payloads;
2. half: paced at half of scoregate's saturated throughput (per payload), p50 added over direct;
3. toggles: scoregate's CPU per request with metrics and access log on/off;
4. mirror: 1 ms primaries and a 100 ms shadow; 50% mirror vs none, paced at half and at a
   quarter of saturation, and saturated; scoregate's p99 ratio, copies sent and dropped during
   the paced runs, memory; nginx's figures beside (`--mirror-only` runs this case alone).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common.children import Children
from benchmarks.common.stats import median
from benchmarks.common.wrk import Load
from benchmarks.gateway.backends import Backends, start_backends
from benchmarks.gateway.measure import Sample, measure, warm_up
from benchmarks.gateway.nginx import start_nginx
from benchmarks.gateway.scoregate import ScoregateConfig, mirror_copies, start_scoregate
from benchmarks.gateway.target import Target, direct

MIRROR_PERCENT = 50
PRIMARY_DELAY_MS = 1.0
SHADOW_DELAY_MS = 100.0


@dataclass(frozen=True)
class Settings:
    work: Path
    payloads: dict[str, Path]  # name → body file, e.g. {"200B": ..., "10KB": ...}
    duration_s: float = 5.0
    runs: int = 3
    connections: int = 32
    launcher: str = "serve"

    def load(self, payload: str, rate_per_s: float = 0.0) -> Load:
        return Load(self.payloads[payload], connections=self.connections,
                    duration_s=self.duration_s, rate_per_s=rate_per_s)


@dataclass
class Results:
    samples: list[Sample] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)


def round_robin(targets: Sequence[Target], load: Load, settings: Settings, children: Children,
                case: str, payload: str) -> list[Sample]:
    samples = []
    for run in range(settings.runs):
        for target in targets:
            samples.append(measure(target, load, settings.work / "wrk", children, case,
                                   payload, run))
    return samples


def half_rate(samples: Sequence[Sample], payload: str, target: str = "scoregate",
              case: str = "saturation") -> float:
    """Half of the median saturated throughput of `target` for `payload` in `case`."""
    saturated = median(s.throughput for s in samples
                       if s.case == case and s.payload == payload and s.target == target)
    if not saturated:
        raise RuntimeError(f"no saturation figure for {target} with {payload}")
    return saturated / 2


def main_cases(children: Children, settings: Settings, results: Results) -> None:
    """Cases 1–3, on fast backends."""
    backends = start_backends(children, 0.0, SHADOW_DELAY_MS)
    targets = _three_targets(children, settings, backends)
    for target in targets:
        warm_up(target, settings.load(next(iter(settings.payloads))), settings.work / "wrk",
                children)
    for payload in settings.payloads:
        print(f"  saturation, {payload}", flush=True)
        results.samples += round_robin(targets, settings.load(payload), settings, children,
                                       "saturation", payload)
    for payload in settings.payloads:
        rate = half_rate(results.samples, payload)
        print(f"  half of saturation ({rate:.0f} req/s), {payload}", flush=True)
        results.samples += round_robin(targets, settings.load(payload, rate), settings,
                                       children, "half", payload)
    print("  metrics and access log on/off", flush=True)
    _toggles(children, settings, backends, targets[2], results)
    for target in targets:
        if target.child is not None:
            children.stop(target.child)
    for backend in (backends.blue, backends.green, backends.shadow):
        children.stop(backend.child)


def _three_targets(children: Children, settings: Settings, backends: Backends) -> list[Target]:
    scoregate = start_scoregate(children, settings.work / "scoregate", backends,
                                ScoregateConfig(), settings.launcher)
    key = scoregate.headers["Authorization"].removeprefix("Bearer ")
    nginx = start_nginx(children, settings.work / "nginx", backends, key)
    return [direct(backends.blue.score_url), nginx, scoregate]


def _toggles(children: Children, settings: Settings, backends: Backends, scoregate: Target,
             results: Results) -> None:
    variants = [scoregate]
    for metrics, access_log in ((False, True), (True, False), (False, False)):
        off = [name for name, on in (("no-metrics", metrics), ("no-access-log", access_log))
               if not on]
        label = "scoregate:" + ",".join(off)
        config = ScoregateConfig(label=label, metrics=metrics, access_log=access_log)
        variants.append(start_scoregate(children, settings.work / label.replace(":", "-"),
                                        backends, config, settings.launcher))
    payload = next(iter(settings.payloads))
    for target in variants[1:]:
        warm_up(target, settings.load(payload), settings.work / "wrk", children)
    results.samples += round_robin(variants, settings.load(payload), settings, children,
                                   "toggles", payload)
    for target in variants[1:]:
        if target.child is not None:
            children.stop(target.child)


def mirror_case(children: Children, settings: Settings, results: Results,
                half: float | None = None, with_nginx: bool = True,
                shadow_answer_kb: int = 0) -> None:
    """Case 4: 50% mirror to a shadow 100× slower than the primaries, at half and a quarter of
    scoregate's saturated throughput and saturated. `half` defaults to half of case 1's
    figure; in a mirror-only run (no case 1) it is half of this case's own saturated
    no-mirror throughput, measured first."""
    payload = next(iter(settings.payloads))
    if half is None and any(s.case == "saturation" for s in results.samples):
        half = half_rate(results.samples, payload)
    backends = start_backends(children, PRIMARY_DELAY_MS, SHADOW_DELAY_MS, shadow_answer_kb)
    targets = _mirror_targets(children, settings, backends, with_nginx)
    for target in targets:
        warm_up(target, settings.load(payload), settings.work / "wrk", children)
    mirrored = targets[1]
    rss_before = _rss_mb(mirrored)
    copies_before = mirror_copies(mirrored)
    if half is None:
        _mirror_saturation(children, settings, results, targets, payload)
        half = half_rate(results.samples, payload, case="mirror-saturation")
    for case, rate in (("mirror-paced", half), ("mirror-quarter", half / 2)):
        print(f"  mirror, paced at {rate:.0f} req/s, {payload}", flush=True)
        results.samples += round_robin(targets, settings.load(payload, rate), settings,
                                       children, case, payload)
    paced_copies = _difference(mirror_copies(mirrored), copies_before)
    if not any(s.case == "mirror-saturation" for s in results.samples):
        _mirror_saturation(children, settings, results, targets, payload)
    results.notes["mirror"] = {
        "mirror_percent": MIRROR_PERCENT,
        "primary_delay_ms": PRIMARY_DELAY_MS,
        "shadow_delay_ms": SHADOW_DELAY_MS,
        "shadow_answer_kb": shadow_answer_kb,
        "paced_rate": half,
        "quarter_rate": half / 2,
        "scoregate_rss_mb_before": rss_before,
        "scoregate_rss_mb_after": _rss_mb(mirrored),
        "scoregate_mirror_copies": mirror_copies(mirrored),
        "scoregate_mirror_copies_paced": paced_copies,
    }
    for target in targets:
        if target.child is not None:
            children.stop(target.child)
    for backend in (backends.blue, backends.green, backends.shadow):
        children.stop(backend.child)


def _mirror_targets(children: Children, settings: Settings, backends: Backends,
                    with_nginx: bool) -> list[Target]:
    """scoregate without and with the mirror (in that order), then nginx's pair if asked."""
    plain = start_scoregate(children, settings.work / "m-scoregate", backends,
                            ScoregateConfig(), settings.launcher)
    mirrored = start_scoregate(children, settings.work / "m-scoregate-mirror", backends,
                               ScoregateConfig("scoregate:mirror", MIRROR_PERCENT),
                               settings.launcher)
    if not with_nginx:
        return [plain, mirrored]
    key = plain.headers["Authorization"].removeprefix("Bearer ")
    return [plain, mirrored,
            start_nginx(children, settings.work / "m-nginx", backends, key),
            start_nginx(children, settings.work / "m-nginx-mirror", backends, key,
                        MIRROR_PERCENT, "nginx:mirror")]


def _mirror_saturation(children: Children, settings: Settings, results: Results,
                       targets: Sequence[Target], payload: str) -> None:
    print(f"  mirror, saturation, {payload}", flush=True)
    results.samples += round_robin(targets, settings.load(payload), settings, children,
                                   "mirror-saturation", payload)


def _difference(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {outcome: value - before.get(outcome, 0.0) for outcome, value in after.items()}


def _rss_mb(target: Target) -> float | None:
    return target.proxy.rss() / 2**20 if target.proxy else None
