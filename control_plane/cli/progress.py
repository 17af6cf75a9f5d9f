"""Progress of a deployment's environment build while `online-deployment create|update` waits.

The create (or update) call waits on the server until the environment is built and the
instances are up; meanwhile this polls `show` on a second connection and prints each new phase
on stderr (stdout keeps the answer, for `-o json` and `--query`): resolving, downloading,
installing with the package count, compiling, checking the server, then the time it took.
A deployment whose build failed ends the command with the resolver's own message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import IO, Any

from control_plane.cli.client import AdminClient
from control_plane.errors import ScoregateError

BUILD_TIMEOUT_S = 3600.0  # a cold build of a large environment takes minutes
POLL_S = 0.5
_WORDS = {"creating": "creating the environment", "resolving": "resolving",
          "downloading": "downloading", "installing": "installing",
          "compiling": "compiling bytecode", "checking": "checking the scoring server",
          "waiting": "waiting to build"}


def while_building(client: AdminClient, path: str, call: Callable[[], Any],
                   stream: IO[str]) -> Any:
    """`call()` on a thread; progress lines of the deployment at `path` until it returns."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["answer"] = call()
        except BaseException as error:  # re-raised on the caller's thread
            outcome["error"] = error

    worker = threading.Thread(target=run, name="deployment write", daemon=True)
    started = time.monotonic()
    worker.start()
    printer = _Printer(stream)
    with client.clone() as poller:
        while worker.is_alive():
            worker.join(POLL_S)
            if worker.is_alive():
                try:
                    printer.show(poller.call("GET", path).get("environment_status"))
                except ScoregateError:
                    continue  # not committed yet, or the server is busy: ask again
    if "error" in outcome:
        raise outcome["error"]
    answer = outcome["answer"]
    with client.clone() as poller:  # another write is building the same environment
        deadline = time.monotonic() + BUILD_TIMEOUT_S
        while answer.get("provisioning_state") == "Creating" and time.monotonic() < deadline:
            printer.show(answer.get("environment_status"))
            time.sleep(POLL_S)
            answer = {**answer, **poller.call("GET", path)}
    printer.finish(answer.get("environment_status"), time.monotonic() - started)
    if answer.get("provisioning_state") == "Failed":
        status = answer.get("environment_status") or {}
        raise ScoregateError(f"deployment {answer.get('name')} is Failed: its environment "
                             f"could not be built: {status.get('message')}")
    return answer


class _Printer:
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
