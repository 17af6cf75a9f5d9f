"""Prometheus metrics of the whole process (one registry), and cheap hot-path recorders.

The metric objects live at module level in prometheus_client's default registry (the one
exception to "no module-level mutable state"). The hot path never resolves labels per
request: `Recorders` caches one `Recorder` per (endpoint, deployment, role), whose
children are bound once. Label values come only from the snapshot and fixed sets. The
control plane sets its own series through the hooks at the end, and reads request counts
with `request_counts`, never by walking label strings itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from gateway.fleet.samples import FleetSamples
from gateway.snapshot import RoutingSnapshot

NONE = "none"  # the label value when no endpoint/deployment was chosen, or the model gave no answer
PROBES = ("readiness", "liveness")

# 1 ms .. 60 s, dense enough for p50/p90/p95/p99 with histogram_quantile.
BUCKETS = (0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04,
           0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0,
           7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0)

_EDR = ("endpoint", "deployment", "role")
_ED = ("endpoint", "deployment")

REQUESTS = Counter("scoregate_requests", "Scoring requests answered.",
                   _EDR + ("status_code", "status_class", "model_status_code"))
REQUEST_SECONDS = Histogram("scoregate_request_duration_seconds",
                            "Total request latency as the client saw it.", _EDR, buckets=BUCKETS)
UPSTREAM_SECONDS = Histogram("scoregate_upstream_duration_seconds",
                             "Time the model took to answer.", _EDR, buckets=BUCKETS)
REQUEST_BYTES = Counter("scoregate_request_bytes", "Request body bytes received.", _EDR)
RESPONSE_BYTES = Counter("scoregate_response_bytes", "Response body bytes sent.", _EDR)
IN_FLIGHT = Gauge("scoregate_in_flight_requests", "Requests in flight to a deployment.", _ED)
MIRROR_COPIES = Counter("scoregate_mirror_copies", "Mirror copies by outcome.",
                        _ED + ("outcome",))
READY_INSTANCES = Gauge("scoregate_ready_instances", "Ready instances per deployment.", _ED)
RESTARTS = Counter("scoregate_instance_restarts", "Instance restarts.", _ED)
PROBE_FAILURES = Counter("scoregate_probe_failures", "Failed probes.", _ED + ("probe",))
TRAFFIC_PERCENT = Gauge("scoregate_traffic_percent", "Live traffic percent.", _ED)
MIRROR_PERCENT = Gauge("scoregate_mirror_percent", "Mirror traffic percent.", _ED)
DESIRED_INSTANCES = Gauge("scoregate_desired_instances",
                          "Instances the autoscaler wants per deployment.", _ED)
SCALING_DECISIONS = Counter("scoregate_scaling_decisions",
                            "Autoscaling decisions that changed the desired count, by reason.",
                            _ED + ("reason",))
SNAPSHOT_VERSION = Gauge("scoregate_snapshot_version", "Version of the routing snapshot in use.")

# --- dynamic batching (docs/batching.md) --------------------------------------------------------
# A batching scoring server starts its answer with these two headers; the proxy records and
# strips them. Only the first header is looked at, so deployments without batching pay one
# comparison per answer.
BATCH_SIZE_HEADER = b"x-scoregate-batch-size"
BATCH_WAIT_HEADER = b"x-scoregate-batch-wait-ms"
BATCH_SIZE_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512, 1024)
BATCH_WAIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015,
                      0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0)
BATCH_SIZE = Histogram("scoregate_batch_size", "Requests in the batch each request was scored "
                       "in (one observation per request).", _ED, buckets=BATCH_SIZE_BUCKETS)
BATCH_WAIT_SECONDS = Histogram("scoregate_batch_wait_seconds", "Time a request waited for its "
                               "batch to close.", _ED, buckets=BATCH_WAIT_BUCKETS)

# --- shadow comparison (gateway/shadow/pairing.py) ---------------------------------------------
# Relative differences |a - b| / max(|a|, |b|) lie in [0, 2]; dense around typical tolerances.
DIFFERENCE_BUCKETS = (1e-12, 1e-9, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 0.002, 0.005, 0.01, 0.02, 0.05,
                      0.1, 0.2, 0.5, 1.0, 2.0)
MIRROR_COMPARISONS = Counter("scoregate_mirror_comparisons",
                             "Shadow answers compared with the live ones, by outcome.",
                             _ED + ("outcome",))
MIRROR_DIFFERENCE = Histogram("scoregate_mirror_relative_difference",
                              "Largest relative numeric difference per comparison.", _ED,
                              buckets=DIFFERENCE_BUCKETS)
MIRROR_COMPARE_BYTES = Gauge("scoregate_mirror_compare_bytes",
                             "Memory held by shadow comparisons (pending answers and kept "
                             "mismatching pairs).", ("endpoint",))


def status_class(status: int) -> str:
    return f"{status // 100}xx"


class Recorder:
    """Bound children for one (endpoint, deployment, role): the hot path's metric handles."""

    __slots__ = ("endpoint", "deployment", "role", "_requests", "request_seconds",
                 "upstream_seconds", "request_bytes", "response_bytes", "_batch")

    def __init__(self, endpoint: str, deployment: str, role: str) -> None:
        self.endpoint, self.deployment, self.role = endpoint, deployment, role
        self._requests: dict[tuple[int, int | None], Counter] = {}
        labels = (endpoint, deployment, role)
        self.request_seconds = REQUEST_SECONDS.labels(*labels)
        self.upstream_seconds = UPSTREAM_SECONDS.labels(*labels)
        self.request_bytes = REQUEST_BYTES.labels(*labels)
        self.response_bytes = RESPONSE_BYTES.labels(*labels)
        self._batch: tuple[Histogram, Histogram] | None = None  # bound at the first batch

    def batched(self, headers: tuple[tuple[bytes, bytes], ...]) -> None:
        """Record a batching server's headers (the caller saw BATCH_SIZE_HEADER first); values
        that are not numbers are ignored, never an error for the client."""
        try:
            size = int(headers[0][1])
            wait_s = (float(headers[1][1]) / 1000.0
                      if len(headers) > 1 and headers[1][0] == BATCH_WAIT_HEADER else None)
        except ValueError:
            return
        children = self._batch
        if children is None:
            children = self._batch = (BATCH_SIZE.labels(self.endpoint, self.deployment),
                                      BATCH_WAIT_SECONDS.labels(self.endpoint, self.deployment))
        if size > 0:
            children[0].observe(size)
        if wait_s is not None and wait_s >= 0.0:
            children[1].observe(wait_s)

    def answered(self, status: int, model_status: int | None, seconds: float,
                 bytes_in: int, bytes_out: int) -> None:
        key = (status, model_status)
        child = self._requests.get(key)
        if child is None:
            model = NONE if model_status is None else str(model_status)
            child = REQUESTS.labels(self.endpoint, self.deployment, self.role, str(status),
                                    status_class(status), model)
            self._requests[key] = child
        child.inc()
        self.request_seconds.observe(seconds)
        if bytes_in:
            self.request_bytes.inc(bytes_in)
        if bytes_out:
            self.response_bytes.inc(bytes_out)


class Recorders:
    """Caches recorders, in-flight gauges and mirror counters per label set."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._recorders: dict[tuple[str, str, str], Recorder] = {}
        self._in_flight: dict[tuple[str, str], Gauge] = {}
        self._mirror: dict[tuple[str, str, str], Counter] = {}

    def recorder(self, endpoint: str, deployment: str, role: str) -> Recorder:
        key = (endpoint, deployment, role)
        recorder = self._recorders.get(key)
        if recorder is None:
            recorder = self._recorders[key] = Recorder(endpoint, deployment, role)
        return recorder

    def watch_in_flight(self, key: tuple[str, str],
                        read: Callable[[tuple[str, str]], int]) -> None:
        """Make the in-flight gauge of `key` call `read(key)` at scrape time (the data plane's
        `Admission.deployment`), so the hot path only counts, in plain dicts."""
        if key in self._in_flight:
            return
        gauge = self._in_flight[key] = IN_FLIGHT.labels(*key)
        gauge.set_function(lambda: float(read(key)))

    def mirror(self, endpoint: str, deployment: str, outcome: str) -> None:
        if not self.enabled:
            return
        key = (endpoint, deployment, outcome)
        counter = self._mirror.get(key)
        if counter is None:
            counter = self._mirror[key] = MIRROR_COPIES.labels(endpoint, deployment, outcome)
        counter.inc()


# With `serve --workers N`, the control plane keeps the workers' latest samples here; `render`
# and `request_counts` add them to this process's own (gateway/fleet/samples.py).
FLEET = FleetSamples()


class _Combined(Collector):
    def collect(self) -> Iterable[Metric]:
        return FLEET.combined(REGISTRY.collect())


_COMBINED = CollectorRegistry(auto_describe=False)
_COMBINED.register(_Combined())


def render() -> tuple[bytes, str]:
    """The registry in Prometheus text format (summed over the workers when there are some),
    with its content type."""
    return generate_latest(_COMBINED if FLEET.active else REGISTRY), CONTENT_TYPE_LATEST


def _samples(family: Counter | Histogram) -> Iterable[tuple[str, dict[str, str], float]]:
    for metric in family.collect():
        for sample in metric.samples:
            yield sample.name, sample.labels, sample.value
        if FLEET.active:
            yield from FLEET.samples(metric.name)


# Functions the control plane calls.

@dataclass(frozen=True, slots=True)
class RequestCounts:
    """Requests of one (endpoint, deployment, role) answered since the process started;
    cumulative, so a window is the difference of two reads."""

    by_status: Mapping[int, int]  # the status the client got → requests
    latency_buckets: tuple[tuple[float, float], ...]  # (upper bound s, cumulative), +Inf
    # last; empty before the first answer

    @property
    def requests(self) -> int:
        return sum(self.by_status.values())


def request_counts(endpoint: str, deployment: str, role: str) -> RequestCounts:
    """Read now from the process's metric objects (what `/metrics` serves); all zero when
    metrics are off or nothing was answered yet. `role` is one of `gateway.roles.ROLES`."""
    wanted = (endpoint, deployment, role)
    by_status: dict[int, int] = {}
    for name, labels, value in _samples(REQUESTS):
        if (name.endswith("_total")
                and (labels["endpoint"], labels["deployment"], labels["role"]) == wanted):
            status = int(labels["status_code"])
            by_status[status] = by_status.get(status, 0) + int(value)
    by_bound: dict[float, float] = {}
    for name, labels, value in _samples(REQUEST_SECONDS):
        if (name.endswith("_bucket")
                and (labels["endpoint"], labels["deployment"], labels["role"]) == wanted):
            bound = float(labels["le"])
            by_bound[bound] = by_bound.get(bound, 0.0) + value
    return RequestCounts(MappingProxyType(by_status), tuple(sorted(by_bound.items())))


def set_ready_instances(endpoint: str, deployment: str, count: int) -> None:
    READY_INSTANCES.labels(endpoint, deployment).set(count)
    # Restart and probe-failure series exist from the start at 0, so dashboards draw a line.
    RESTARTS.labels(endpoint, deployment)
    for probe in PROBES:
        PROBE_FAILURES.labels(endpoint, deployment, probe)


def set_desired_instances(endpoint: str, deployment: str, count: int) -> None:
    DESIRED_INSTANCES.labels(endpoint, deployment).set(count)


def count_scaling_decision(endpoint: str, deployment: str, reason: str) -> None:
    SCALING_DECISIONS.labels(endpoint, deployment, reason).inc()


def count_restart(endpoint: str, deployment: str) -> None:
    RESTARTS.labels(endpoint, deployment).inc()


def count_probe_failure(endpoint: str, deployment: str, probe: str) -> None:
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {PROBES}, got {probe!r}")
    PROBE_FAILURES.labels(endpoint, deployment, probe).inc()


def _label_pairs(gauge: Gauge) -> set[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    for metric in gauge.collect():
        for sample in metric.samples:
            pairs.add((sample.labels["endpoint"], sample.labels["deployment"]))
    return pairs


def publish_config(snapshot: RoutingSnapshot) -> None:
    """Set the traffic and mirror gauges and the version; drop series of deleted deployments."""
    live: set[tuple[str, str]] = set()
    for endpoint in snapshot.endpoints.values():
        traffic = dict(endpoint.traffic)
        mirror_name, mirror_percent = endpoint.mirror or ("", 0)
        for name in endpoint.deployments:
            live.add((endpoint.name, name))
            TRAFFIC_PERCENT.labels(endpoint.name, name).set(traffic.get(name, 0))
            MIRROR_PERCENT.labels(endpoint.name, name).set(
                mirror_percent if name == mirror_name else 0)
    for gauge in (TRAFFIC_PERCENT, MIRROR_PERCENT, READY_INSTANCES, DESIRED_INSTANCES):
        for pair in _label_pairs(gauge) - live:
            gauge.remove(*pair)
    SNAPSHOT_VERSION.set(snapshot.version)
