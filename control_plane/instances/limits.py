"""How much memory one instance may use: from the deployment's `instance_type`, else a setting.

Azure sizes an instance by its VM SKU; a deployment YAML written for Azure names one
(`instance_type: Standard_DS3_v2`). Here every instance shares one machine, so the SKU's memory
becomes the instance's limit, enforced by the kernel as RLIMIT_AS (launch.spawn). Sizes are
Azure's published memory per SKU, for the common CPU sizes; a SKU not listed (GPU sizes
included: CUDA reserves far more address space than memory) gets the default limit, which is
`SCOREGATE_INSTANCE_MEMORY_MB` in serve's environment (no limit when unset).
"""

from __future__ import annotations

from control_plane.errors import ValidationError
from control_plane.specs.resources import DeploymentSpec

_GIB = 1024
SKU_MEMORY_MB: dict[str, int] = {
    "standard_ds1_v2": int(3.5 * _GIB), "standard_ds2_v2": 7 * _GIB,
    "standard_ds3_v2": 14 * _GIB, "standard_ds4_v2": 28 * _GIB, "standard_ds5_v2": 56 * _GIB,
    "standard_f2s_v2": 4 * _GIB, "standard_f4s_v2": 8 * _GIB, "standard_f8s_v2": 16 * _GIB,
    "standard_f16s_v2": 32 * _GIB, "standard_f32s_v2": 64 * _GIB,
    "standard_f48s_v2": 96 * _GIB, "standard_f64s_v2": 128 * _GIB,
    "standard_f72s_v2": 144 * _GIB,
    "standard_e2s_v3": 16 * _GIB, "standard_e4s_v3": 32 * _GIB, "standard_e8s_v3": 64 * _GIB,
    "standard_e16s_v3": 128 * _GIB, "standard_e32s_v3": 256 * _GIB,
    "standard_d2as_v4": 8 * _GIB, "standard_d4as_v4": 16 * _GIB,
    "standard_d8as_v4": 32 * _GIB, "standard_d16as_v4": 64 * _GIB,
}
ENV_VAR = "SCOREGATE_INSTANCE_MEMORY_MB"


def memory_limit_mb(spec: DeploymentSpec, default_mb: int | None) -> int | None:
    """The instance's memory limit in MiB: its SKU's size when `instance_type` names a listed
    SKU (the deployment's own choice wins), else `default_mb`."""
    instance_type = spec.not_applied.get("instance_type")
    if isinstance(instance_type, str):
        sized = SKU_MEMORY_MB.get(instance_type.strip().lower())
        if sized is not None:
            return sized
    return default_mb


def parse_memory_mb(text: str | None) -> int | None:
    """`SCOREGATE_INSTANCE_MEMORY_MB`: a positive whole number, or unset."""
    if text is None or not text.strip():
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValidationError("memory", f"{ENV_VAR} must be a whole number of MiB, "
                                        f"got {text!r}") from None
    if value <= 0:
        raise ValidationError("memory", f"{ENV_VAR} must be positive, got {value}")
    return value
