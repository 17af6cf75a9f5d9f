"""Auto-deploy policies: a newly registered model version deploys itself, behind a gate and a
guarded rollout (docs/autodeploy.md)."""

from control_plane.autodeploy.rows import STORE_EXTENSION
from control_plane.autodeploy.service import AutoDeploy

__all__ = ["STORE_EXTENSION", "AutoDeploy"]
