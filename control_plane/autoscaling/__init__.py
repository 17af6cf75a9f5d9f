"""Autoscaling managed instances (docs/autoscaling.md): Azure's `scale_settings` of type
`target_utilization`, decided from the data plane's own in-flight counts.

`policy` decides (pure), `service.Autoscaler` samples, records and acts, `rows` keeps the
decided counts and the decisions (with the guard that refuses a fixed `instance_count`).
"""

from control_plane.autoscaling.policy import REASONS, Decision, Measurement, decide
from control_plane.autoscaling.rows import SCALED, STORE_EXTENSION
from control_plane.autoscaling.service import Autoscaler

__all__ = ["REASONS", "SCALED", "STORE_EXTENSION", "Autoscaler", "Decision", "Measurement",
           "decide"]
