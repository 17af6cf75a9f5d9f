"""What `serve` tells each data-plane worker at start (one JSON argument): its place in the
fleet, the descriptors it inherits and the listener's options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from gateway.http.server_config import ListenerLimits
from gateway.shadow.rules import CompareSettings


@dataclass(frozen=True)
class WorkerConfig:
    index: int
    workers: int
    listen_fd: int
    control_fd: int
    counts_fd: int
    log_format: str
    metrics: bool
    metrics_route: bool
    access_log: bool
    compare: CompareSettings
    limits: ListenerLimits

    def to_json(self) -> str:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["compare"] = {n: getattr(self.compare, n)
                           for n in self.compare.__dataclass_fields__}
        data["limits"] = {n: getattr(self.limits, n) for n in self.limits.__dataclass_fields__}
        return orjson.dumps(data).decode()

    @classmethod
    def from_json(cls, text: str) -> WorkerConfig:
        data: dict[str, Any] = orjson.loads(text)
        data["compare"] = CompareSettings(**data["compare"])
        data["limits"] = ListenerLimits(**data["limits"])
        return cls(**data)
