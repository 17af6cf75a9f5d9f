"""Per-instance request tallies: what a rolling update judges its new instances by.

The Prometheus series stop at the deployment (an instance label would multiply them with every
restart), but a rolling update must compare the new instances of a deployment with its old
ones. So the proxy also counts each answer per instance URL (unique per instance start) here,
in plain dicts: a dict lookup, a bisect and two increments per request. Like the metric
objects, the tallies are process-wide (module level), and read by the control plane only
through `instance_counts`.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gateway.telemetry.metrics import BUCKETS, RequestCounts

_BOUNDS = (*BUCKETS, float("inf"))


@dataclass
class _Tally:
    by_status: dict[int, int] = field(default_factory=dict)
    buckets: list[int] = field(default_factory=lambda: [0] * len(_BOUNDS))


_TALLIES: dict[str, _Tally] = {}


def count_answer(url: str, status: int, seconds: float) -> None:
    """One answer (or failure, as the status the client gets) of the instance at `url`."""
    tally = _TALLIES.get(url)
    if tally is None:
        tally = _TALLIES[url] = _Tally()
    tally.by_status[status] = tally.by_status.get(status, 0) + 1
    tally.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1


def instance_counts(url: str) -> RequestCounts:
    """The cumulative counts of the instance at `url` (`InstanceRoute.url`); all zero before
    its first answer. A window is the difference of two reads, as for `request_counts`. With
    `serve --workers N`, summed over the workers' tallies (`FLEET_TALLIES`)."""
    tally = _TALLIES.get(url)
    if FLEET_TALLIES.active:
        tally = FLEET_TALLIES.summed(url, tally)
    if tally is None:
        return RequestCounts(MappingProxyType({}), ())
    cumulative, total = [], 0
    for bound, count in zip(_BOUNDS, tally.buckets, strict=True):
        total += count
        cumulative.append((bound, float(total)))
    return RequestCounts(MappingProxyType(dict(tally.by_status)), tuple(cumulative))


TallyExport = dict[str, list[Any]]  # url → [{status: count}, [count per bucket]] (JSON)


def export_tallies() -> TallyExport:
    """This worker's tallies, for the control plane's collection (gateway/fleet/worker.py)."""
    return {url: [{str(k): v for k, v in t.by_status.items()}, list(t.buckets)]
            for url, t in _TALLIES.items()}


def _add(into: _Tally, by_status: dict[str, int], buckets: list[int]) -> None:
    for status, count in by_status.items():
        into.by_status[int(status)] = into.by_status.get(int(status), 0) + int(count)
    for index, count in enumerate(buckets):
        into.buckets[index] += int(count)


class FleetTallies:
    """The workers' latest tallies, plus what dead workers had counted (as `FleetSamples`)."""

    def __init__(self) -> None:
        self.active = False
        self._workers: dict[int, TallyExport] = {}
        self._retired: dict[str, _Tally] = {}

    def update(self, worker: int, export: TallyExport) -> None:
        self._workers[worker] = export

    def retire(self, worker: int) -> None:
        for url, (by_status, buckets) in self._workers.pop(worker, {}).items():
            _add(self._retired.setdefault(url, _Tally()), by_status, buckets)

    def summed(self, url: str, own: _Tally | None) -> _Tally | None:
        found = [export[url] for export in self._workers.values() if url in export]
        retired = self._retired.get(url)
        if not found and retired is None:
            return own
        total = _Tally()
        for part in (own, retired):
            if part is not None:
                _add(total, {str(k): v for k, v in part.by_status.items()}, part.buckets)
        for by_status, buckets in found:
            _add(total, by_status, buckets)
        return total


FLEET_TALLIES = FleetTallies()
