"""The scaling decision, pure: measured demand + settings + the last decisions → a new count.

Target tracking as SageMaker and Azure's kubernetes deployments do it: utilisation is the
requests in flight (averaged over `polling_interval`) over `max_concurrent_requests_per_instance`
× ready instances, and the count wanted is the smallest that keeps it at or under
`target_utilization_percentage`. It is computed from the demand, not from the ready count, so
instances still starting never make the scaler ask for more of them again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from control_plane.specs.resources import ScaleSettings

SCALE_OUT, SCALE_IN, COLD_START, BOUNDS = "scale_out", "scale_in", "cold_start", "bounds"
REASONS = (SCALE_OUT, SCALE_IN, COLD_START, BOUNDS)


@dataclass(frozen=True)
class Measurement:
    """One polling interval of one deployment."""

    average_in_flight: float
    ready: int
    max_concurrent: int  # request_settings.max_concurrent_requests_per_instance

    @property
    def utilization(self) -> float | None:
        """Percent of the ready instances' capacity in use; None without a ready instance."""
        if self.ready == 0:
            return None
        return 100.0 * self.average_in_flight / (self.max_concurrent * self.ready)


@dataclass(frozen=True)
class History:
    """When the deployment last scaled out, and last changed at all (or began to be tracked:
    a new deployment gets a full scale-in cooldown before its first scale-in)."""

    last_scale_out: float | None
    last_change: float


@dataclass(frozen=True)
class Decision:
    old: int
    new: int
    reason: str  # one of REASONS
    utilization: float | None  # percent, as measured
    average_in_flight: float
    message: str


def bounded(count: int, scale: ScaleSettings) -> int:
    return min(max(count, scale.min_instances), scale.max_instances)


def needed(average_in_flight: float, max_concurrent: int, target_percent: int) -> int:
    """The fewest instances that keep utilisation at or under the target."""
    per_instance = max_concurrent * target_percent / 100.0
    return math.ceil(average_in_flight / per_instance - 1e-9)


def decide(scale: ScaleSettings, desired: int, measured: Measurement, history: History,
           now: float, baking: bool = False) -> Decision | None:
    """The change to make now, or None (nothing to change, or a cooldown or a baking rollout
    step holds it). `baking` only ever holds a scale-in."""
    fixed = bounded(desired, scale)
    if fixed != desired:
        return _decision(desired, fixed, BOUNDS, measured,
                         f"scale_settings now allow {scale.min_instances}..{scale.max_instances}")
    wanted = bounded(needed(measured.average_in_flight, measured.max_concurrent,
                            scale.target_utilization_percentage), scale)
    target = f"target {scale.target_utilization_percentage}%"
    if wanted > desired:
        if history.last_scale_out is not None and \
                now - history.last_scale_out < scale.scale_out_cooldown:
            return None
        return _decision(desired, wanted, SCALE_OUT, measured, f"above the {target}")
    if wanted < desired:
        if baking or now - history.last_change < scale.scale_in_cooldown:
            return None
        return _decision(desired, wanted, SCALE_IN, measured,
                         f"below the {target} for scale_in_cooldown "
                         f"({scale.scale_in_cooldown} s)")
    return None


def cold_start(scale: ScaleSettings, waiting: int) -> Decision:
    """A deployment scaled to zero got a request: start its first instance now, without
    waiting for the polling interval (the request is waiting)."""
    new = max(1, scale.min_instances)
    return Decision(0, new, COLD_START, None, float(waiting),
                    f"{waiting} request(s) waiting for a deployment scaled to zero")


def _decision(old: int, new: int, reason: str, measured: Measurement, why: str) -> Decision:
    utilization = measured.utilization
    shown = "no ready instance" if utilization is None else f"utilisation {utilization:.0f}%"
    message = (f"{old} -> {new} instances: {shown} ({measured.average_in_flight:.2f} requests "
               f"in flight on average, {measured.ready} ready), {why}")
    return Decision(old, new, reason, utilization, measured.average_in_flight, message)
