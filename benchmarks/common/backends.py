"""A fake scoring backend (backend.py) as a child of the benchmark: cheap, so that what is
measured is the proxy in front of it."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common.children import Child, Children, free_port, http_get, wait_until

BACKEND_SCRIPT = Path(__file__).with_name("backend.py")


@dataclass(frozen=True)
class Backend:
    name: str
    port: int
    child: Child

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def score_url(self) -> str:
        return f"{self.base_url}/score"

    def posts(self) -> int:
        """POSTs this backend has answered (mirror copies reaching a shadow, for instance)."""
        answer = http_get(f"{self.base_url}/stats")
        if answer is None or answer[0] != 200:
            raise RuntimeError(f"backend {self.name} gave no /stats")
        return int(json.loads(answer[1])["posts"])


def start_backend(children: Children, name: str, delay_ms: float, body_kb: int = 0) -> Backend:
    port = free_port()
    child = children.start([sys.executable, str(BACKEND_SCRIPT), "--port", str(port),
                            "--delay-ms", f"{delay_ms:g}", "--body-kb", str(body_kb)],
                           name=f"backend-{name}")
    backend = Backend(name, port, child)

    def up() -> bool:
        child.check_alive()
        return http_get(backend.base_url + "/", timeout_s=0.5) is not None

    wait_until(up, 20, f"backend {name} on port {port}")
    return backend
