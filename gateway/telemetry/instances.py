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
    its first answer. A window is the difference of two reads, as for `request_counts`."""
    tally = _TALLIES.get(url)
    if tally is None:
        return RequestCounts(MappingProxyType({}), ())
    cumulative, total = [], 0
    for bound, count in zip(_BOUNDS, tally.buckets, strict=True):
        total += count
        cumulative.append((bound, float(total)))
    return RequestCounts(MappingProxyType(dict(tally.by_status)), tuple(cumulative))
