"""Requests in flight, counted by one owner, and the 429 rule they decide.

Three counts, each for a reader elsewhere:
- per instance id, every request sent to it (live, direct, mirror, swagger): the picker sends
  to the least loaded instance, and the supervisor drains an instance until it reaches 0;
- per (endpoint, deployment), live and direct requests: Azure's rule answers 429 once
  `2 × max_concurrent_requests_per_instance × ready instances` are in flight;
- per (endpoint, deployment), mirror copies (bounded elsewhere, by `mirror_max_in_flight`);
- per (endpoint, deployment), requests waiting for a deployment scaled to zero to start
  (gateway/cold_start.py): the demand the autoscaler sees before any instance runs.
The in-flight gauge reads live plus mirror at scrape time. The counters are plain dicts
changed only on the event loop thread, between awaits: no lock on the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.errors import GatewayError
from gateway.snapshot import DeploymentRoute

Key = tuple[str, str]  # (endpoint, deployment)


def max_in_flight(deployment: DeploymentRoute) -> int:
    """Azure's 429 rule: 2 × max_concurrent_requests_per_instance × ready instances."""
    return 2 * deployment.max_concurrent_requests_per_instance * len(deployment.instances)


def too_many(deployment: DeploymentRoute, limit: int) -> GatewayError:
    return GatewayError(429, f"too many requests in flight for deployment '{deployment.name}' "
                             f"(limit {limit}: 2 x max_concurrent_requests_per_instance x "
                             "ready instances)")


class Admission:
    """The in-flight counters of one gateway; callers pair each `start_*`/`admit` with its end
    in a `finally`."""

    __slots__ = ("_instances", "_live", "_mirror", "_waiting")

    def __init__(self) -> None:
        self._instances: dict[str, int] = {}
        self._live: dict[Key, int] = {}
        self._mirror: dict[Key, int] = {}
        self._waiting: dict[Key, int] = {}

    # --- per instance ------------------------------------------------------------------------

    @property
    def instances(self) -> Mapping[str, int]:
        """Requests in flight per instance id (absent: 0), for the picker; read only."""
        return self._instances

    def instance(self, instance_id: str) -> int:
        return self._instances.get(instance_id, 0)

    def start_instance(self, instance_id: str) -> None:
        counts = self._instances
        counts[instance_id] = counts.get(instance_id, 0) + 1

    def end_instance(self, instance_id: str) -> None:
        counts = self._instances
        left = counts[instance_id] - 1
        if left:
            counts[instance_id] = left
        else:  # ids of replaced instances do not pile up
            del counts[instance_id]

    # --- per deployment ----------------------------------------------------------------------

    def admit(self, deployment: DeploymentRoute, key: Key) -> None:
        """Count a live or direct request to `deployment`, or raise 429 when it is full."""
        counts = self._live
        current = counts.get(key, 0)
        limit = max_in_flight(deployment)
        if current >= limit:
            raise too_many(deployment, limit)
        counts[key] = current + 1

    def release(self, key: Key) -> None:
        self._live[key] -= 1

    def start_mirror(self, key: Key) -> None:
        copies = self._mirror
        copies[key] = copies.get(key, 0) + 1

    def end_mirror(self, key: Key) -> None:
        self._mirror[key] -= 1

    def deployment(self, key: Key) -> int:
        """Live, direct and mirror requests in flight to one deployment (the gauge's value)."""
        return self._live.get(key, 0) + self._mirror.get(key, 0)

    def start_waiting(self, key: Key) -> None:
        waiting = self._waiting
        waiting[key] = waiting.get(key, 0) + 1

    def end_waiting(self, key: Key) -> None:
        self._waiting[key] -= 1

    def demand(self, key: Key) -> int:
        """Everything asking `key` for capacity now: requests in flight (live, direct,
        mirror) and those waiting for its first instance; what autoscaling samples."""
        return self.deployment(key) + self._waiting.get(key, 0)
