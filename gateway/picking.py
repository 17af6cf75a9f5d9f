"""Pure choice functions of the hot path: which endpoint, deployment and instance.

Randomness comes in as an argument (`draw` in [0, 1)), so the choices are testable and the
caller decides where random numbers come from.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.snapshot import EndpointRoute, InstanceRoute, RoutingSnapshot


@dataclass(frozen=True, slots=True)
class TrafficTable:
    """Cumulative weights of one endpoint's live traffic, built once per snapshot."""

    names: tuple[str, ...]
    bounds: tuple[int, ...]  # running totals; bounds[-1] is the total weight

    @classmethod
    def build(cls, traffic: tuple[tuple[str, int], ...]) -> TrafficTable:
        names: list[str] = []
        bounds: list[int] = []
        total = 0
        for name, percent in traffic:
            if percent > 0:
                total += percent
                names.append(name)
                bounds.append(total)
        return cls(tuple(names), tuple(bounds))

    def pick(self, draw: float) -> str | None:
        """The deployment for a uniform `draw` in [0, 1); None when no weight is positive."""
        if not self.bounds:
            return None
        index = bisect_right(self.bounds, draw * self.bounds[-1])
        return self.names[min(index, len(self.names) - 1)]


def endpoint_for(snapshot: RoutingSnapshot, host: str | None) -> EndpointRoute | None:
    """Plain `/score`: the only endpoint, else the one whose name starts the Host (`{name}.`)."""
    only = snapshot.default_endpoint
    if only is not None:
        return only
    if host:
        name, dot, _ = host.partition(".")
        if dot:
            return snapshot.endpoints.get(name)
    return None


def mirror_due(mirror: tuple[str, int] | None, draw: float) -> str | None:
    """The mirror deployment when this request is to be copied (probability percent / 100)."""
    if mirror is None:
        return None
    name, percent = mirror
    return name if draw * 100.0 < percent else None


def least_in_flight(instances: tuple[InstanceRoute, ...], in_flight: Mapping[str, int],
                    draw: float, exclude: str | None = None) -> InstanceRoute | None:
    """The instance with the fewest requests in flight; ties go round from a random start."""
    count = len(instances)
    if count == 0:
        return None
    start = int(draw * count) % count
    best: InstanceRoute | None = None
    best_load = 0
    for offset in range(count):
        instance = instances[(start + offset) % count]
        if instance.id == exclude:
            continue
        load = in_flight.get(instance.id, 0)
        if best is None or load < best_load:
            best, best_load = instance, load
    return best
