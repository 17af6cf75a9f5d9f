"""Read-modify-write with If-Match from another process, for the concurrency tests.

`increment HOME COUNT`: adds 1 to the `n` tag of endpoint `counter` COUNT times, retrying
on PreconditionFailed; prints `ack <n>` for each acknowledged value, then `done <ok> <stale>`.
`create HOME PREFIX COUNT`: creates COUNT deployments PREFIX-0.. on endpoint `counter`.
Both print `ready` and wait for the file HOME/go, so that the workers of a test overlap.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from control_plane.errors import PreconditionFailed
from control_plane.rollouts.rows import STORE_EXTENSION
from control_plane.specs.resources import DeploymentSpec
from control_plane.store.sqlite_store import Store

EXTENSIONS = (STORE_EXTENSION,)  # the rollouts' table and guard, as `serve` wires them

ENDPOINT = "counter"


def increment_once(store: Store) -> tuple[int, bool]:
    """Reads `n`, writes n + 1 with If-Match: (n + 1, whether it was written, not stale)."""
    record = store.endpoint(ENDPOINT)
    n = int(record.spec.tags.get("n", "0")) + 1
    try:
        store.update_endpoint(record.spec.with_changes(tags={"n": str(n)}), if_match=record.etag)
    except PreconditionFailed:
        return n, False
    return n, True


def increment(store: Store, count: int) -> None:
    ok = stale = 0
    while ok < count:
        n, written = increment_once(store)
        if not written:
            stale += 1
            continue
        ok += 1
        print(f"ack {n}", flush=True)
    print(f"done {ok} {stale}", flush=True)


def create(store: Store, prefix: str, count: int) -> None:
    for i in range(count):
        store.create_deployment(DeploymentSpec(f"{prefix}-{i}", ENDPOINT))
    print(f"done {count} 0", flush=True)


def wait_for_go(home: Path) -> None:
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not (home / "go").exists():
        if time.monotonic() > deadline:
            raise SystemExit("no go file within 60 s")
        time.sleep(0.005)


if __name__ == "__main__":
    mode, home = sys.argv[1], Path(sys.argv[2])
    wait_for_go(home)
    if mode == "increment":
        increment(Store(home, EXTENSIONS), int(sys.argv[3]))
    else:
        create(Store(home, EXTENSIONS), sys.argv[3], int(sys.argv[4]))
