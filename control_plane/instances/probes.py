"""HTTP probes of a managed instance (`GET /` over its Unix socket), and Azure's threshold
counting.

Raw asyncio streams rather than an HTTP client: a probe needs one status line, runs a few
times a second at most, and must not share a connection pool with the hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from control_plane.specs.resources import ProbeSettings


async def probe(socket_path: str, timeout_s: float, path: str = "/") -> str | None:
    """None when `GET path` answers 2xx within the timeout, else why not (for last_error)."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_unix_connection(socket_path)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n"
                         "Connection: close\r\n\r\n".encode())
            await writer.drain()
            status_line = await reader.readline()
    except TimeoutError:
        return f"probe GET {path} timed out after {timeout_s:g}s"
    except OSError as error:
        return f"probe GET {path} failed: {error.strerror or error}"
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
    parts = status_line.decode("latin-1").split()
    if len(parts) < 2 or not parts[1].isdigit():
        return f"probe GET {path} got no HTTP status line"
    if not 200 <= int(parts[1]) < 300:
        return f"probe GET {path} answered {parts[1]}"
    return None


@dataclass
class Streaks:
    """Consecutive successes and failures, judged by one probe's thresholds."""

    settings: ProbeSettings
    successes: int = 0
    failures: int = 0

    def record(self, ok: bool) -> None:
        if ok:
            self.successes, self.failures = self.successes + 1, 0
        else:
            self.successes, self.failures = 0, self.failures + 1

    @property
    def passed(self) -> bool:
        return self.successes >= max(1, self.settings.success_threshold)

    @property
    def failed(self) -> bool:
        return self.failures >= max(1, self.settings.failure_threshold)
