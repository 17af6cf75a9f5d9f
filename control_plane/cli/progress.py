"""Progress of a deployment's environment build while `online-deployment create|update` waits.

The command polls `show` until the operation ended (cli/deployments.py); each poll's
`environment_status` goes through `BuildPrinter`, which prints each new phase on stderr
(stdout keeps the answer, for `-o json` and `--query`): creating, resolving, downloading,
installing with the package count, compiling, checking the server, then how long it took.
"""

from __future__ import annotations

import time
from typing import IO, Any

BUILD_TIMEOUT_S = 3600.0  # a cold build of a large environment takes minutes
_WORDS = {"creating": "creating the environment", "resolving": "resolving",
          "downloading": "downloading", "installing": "installing",
          "compiling": "compiling bytecode", "checking": "checking the scoring server",
          "waiting": "waiting to build"}


class BuildPrinter:
    """Prints a build's phases once each, as they are seen (at the poll's pace)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.last: tuple[Any, ...] = ()
        self.built = False  # a build was seen: say how long it took

    def show(self, status: dict[str, Any] | None) -> None:
        if not status or status.get("state") != "building":
            return
        phase = status.get("phase") or "creating"
        packages = status.get("packages")
        detail = str(status.get("detail") or "")
        shown = (phase, packages, detail if detail.startswith("Downloading") else "")
        if shown == self.last:
            return
        self.last, self.built = shown, True
        words = _WORDS.get(phase, phase)
        if phase == "creating":
            words += f" (Python {status.get('python')}) from {status.get('source')}"
        if packages and phase in ("downloading", "installing", "compiling"):
            words += f", {packages} packages"
        if shown[2]:
            words += f": {detail.removeprefix('Downloading ')}"
        started = status.get("started_at")
        if isinstance(started, (int, float)):  # the server's clock: same machine, loopback
            words += f" ({max(0.0, time.time() - started):.0f} s)"
        self._line(words)

    def finish(self, status: dict[str, Any] | None, waited_s: float) -> None:
        if not status or status.get("state") == "gateway":
            return
        if status.get("note"):
            self._line(f"note: {status['note']}")
        if status.get("state") == "ready":
            took = status.get("took_s")
            how = (f"built in {took:.1f} s" if self.built and took is not None
                   else "already built")
            self._line(f"ready: {status.get('packages')} packages, Python "
                       f"{status.get('python')}, {how}; deployment up in {waited_s:.1f} s")

    def _line(self, text: str) -> None:
        self.stream.write(f"environment: {text}\n")
        self.stream.flush()
