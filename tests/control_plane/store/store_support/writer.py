"""Acknowledged writes in a loop, until killed: the crash-safety test `kill -9`s this process.

Each write is one `Store.apply` that changes the endpoint's traffic and tags and two
deployments together, so a half-applied write would show as values that disagree.
Prints `ack <revision> <n>` (flushed) only after the write returned.
"""

from __future__ import annotations

import sys
from pathlib import Path

from control_plane.rollouts.rows import STORE_EXTENSION
from control_plane.specs.resources import DeploymentSpec, EndpointSpec
from control_plane.store.sqlite_store import Store

EXTENSIONS = (STORE_EXTENSION,)  # the rollouts' table and guard, as `serve` wires them

ENDPOINT = "crash-test"


def write(store: Store, n: int) -> None:
    blue = n % 101
    store.apply(
        [EndpointSpec(ENDPOINT, traffic={"blue": blue, "green": 100 - blue}, tags={"n": str(n)})],
        [
            DeploymentSpec("blue", ENDPOINT, environment_variables={"N": str(n)}),
            DeploymentSpec("green", ENDPOINT, instance_count=1 + n % 3, tags={"n": str(n)}),
        ],
    )


def main(home: Path) -> None:
    store = Store(home, EXTENSIONS)
    endpoints = store.endpoints()
    n = int(endpoints[ENDPOINT].spec.tags["n"]) if ENDPOINT in endpoints else 0
    if n == 0:
        write(store, 0)
    while True:
        n += 1
        write(store, n)
        print(f"ack {store.revision} {n}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
