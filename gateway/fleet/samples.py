"""Metric samples of the data-plane workers, summed: what makes `/metrics` and the request
counts a rollout window reads fleet-wide.

A worker exports its own request metrics (counters, histograms and the gauges that add up:
requests in flight, comparison memory) as plain JSON (`export_families`); the control plane
keeps each worker's latest export and sums them (`FleetSamples`). The control plane's own
series (ready instances, restarts, probe failures, traffic and mirror percent, the snapshot
version, process metrics) are left to it: workers never set them. When a worker dies, its
last export of counters and histograms is folded into a retired base, so fleet counters never
go backwards across a restart; what it counted after its last export is lost (the error
bound: one collection period of that worker's traffic, see docs/workers.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

SUMMED_GAUGES = frozenset({"scoregate_in_flight_requests", "scoregate_mirror_compare_bytes"})
_CUMULATIVE = frozenset({"counter", "histogram", "summary"})

Export = list[Any]  # [[family, type, help, [[sample, {labels}, value], ...]], ...] (JSON)
SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def export_families(registry: CollectorRegistry) -> Export:
    """This worker's summable scoregate families, as JSON-ready lists."""
    out: Export = []
    for metric in registry.collect():
        if not metric.name.startswith("scoregate_"):
            continue
        if metric.type not in _CUMULATIVE and metric.name not in SUMMED_GAUGES:
            continue
        samples = [[s.name, s.labels, s.value] for s in metric.samples
                   if not s.name.endswith("_created")]
        if samples:
            out.append([metric.name, metric.type, metric.documentation, samples])
    return out


class _Family:
    __slots__ = ("type", "documentation", "values")

    def __init__(self, kind: str, documentation: str) -> None:
        self.type, self.documentation = kind, documentation
        self.values: dict[SampleKey, float] = {}

    def add(self, key: SampleKey, value: float) -> None:
        self.values[key] = self.values.get(key, 0.0) + value


def _add_export(into: dict[str, _Family], export: Export, cumulative_only: bool) -> None:
    for name, kind, documentation, samples in export:
        if cumulative_only and kind not in _CUMULATIVE:
            continue
        family = into.get(name)
        if family is None:
            family = into[name] = _Family(kind, documentation)
        for sample, labels, value in samples:
            family.add((sample, tuple(sorted(labels.items()))), float(value))


class FleetSamples:
    """The latest export of every live worker, plus the retired base of dead ones."""

    def __init__(self) -> None:
        self._workers: dict[int, Export] = {}
        self._retired: dict[str, _Family] = {}
        self._merged: dict[str, _Family] | None = None
        self.active = False  # True once serve runs workers: the readers include these sums

    def update(self, worker: int, export: Export) -> None:
        self._workers[worker] = export
        self._merged = None

    def retire(self, worker: int) -> None:
        """Worker `worker` died: keep what its counters had counted, forget its gauges."""
        export = self._workers.pop(worker, None)
        if export is not None:
            _add_export(self._retired, export, cumulative_only=True)
        self._merged = None

    def _sums(self) -> dict[str, _Family]:
        merged = self._merged
        if merged is None:
            merged = {}
            for name, family in self._retired.items():
                copy = merged[name] = _Family(family.type, family.documentation)
                copy.values.update(family.values)
            for export in self._workers.values():
                _add_export(merged, export, cumulative_only=False)
            self._merged = merged
        return merged

    def samples(self, family: str) -> Iterable[tuple[str, dict[str, str], float]]:
        """(sample name, labels, value) of one family, summed over the fleet."""
        found = self._sums().get(family)
        if found is None:
            return ()
        return [(sample, dict(labels), value) for (sample, labels), value in found.values.items()]

    def combined(self, own: Iterable[Metric]) -> list[Metric]:
        """This process's families with the fleet's sums added in (same names and labels add
        up; families only the workers have are appended)."""
        sums = self._sums()
        out: list[Metric] = []
        seen: set[str] = set()
        for metric in own:
            seen.add(metric.name)
            extra = sums.get(metric.name)
            if extra is None:
                out.append(metric)
                continue
            values = dict(extra.values)
            combined = Metric(metric.name, metric.documentation, metric.type)
            for s in metric.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                combined.add_sample(s.name, s.labels, s.value + values.pop(key, 0.0))
            for (sample, labels), value in values.items():
                combined.add_sample(sample, dict(labels), value)
            out.append(combined)
        for name, family in sums.items():
            if name not in seen:
                metric = Metric(name, family.documentation, family.type)
                for (sample, labels), value in family.values.items():
                    metric.add_sample(sample, dict(labels), value)
                out.append(metric)
        return out
