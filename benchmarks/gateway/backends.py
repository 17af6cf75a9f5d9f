"""The backend processes a comparison shares: blue and green (the 90/10 split) and a shadow.

Every target (direct, nginx, scoregate) is pointed at the same processes, one per deployment.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.common.backends import Backend, start_backend
from benchmarks.common.children import Children


@dataclass(frozen=True)
class Backends:
    blue: Backend
    green: Backend
    shadow: Backend


def start_backends(children: Children, delay_ms: float, shadow_delay_ms: float,
                   shadow_body_kb: int = 0) -> Backends:
    return Backends(
        blue=start_backend(children, "blue", delay_ms),
        green=start_backend(children, "green", delay_ms),
        shadow=start_backend(children, "shadow", shadow_delay_ms, shadow_body_kb),
    )
