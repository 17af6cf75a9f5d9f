"""The kill -9 test's worker: registers versions of a big model folder until it is killed.

    python -m tests.control_plane.registry.create_loop HOME SOURCE

Prints `committed <version>` after each commit. Odd rounds rewrite one file of SOURCE first,
so some versions need a new artifact folder and others share the previous one's.
"""

from __future__ import annotations

import sys
from pathlib import Path

from control_plane.registry import STORE_EXTENSION, ModelRegistry
from control_plane.store.sqlite_store import Store


def main(home: Path, source: Path) -> None:
    registry = ModelRegistry(Store(home, (STORE_EXTENSION,)), home)
    print("ready", flush=True)
    round_number = 0
    while True:
        round_number += 1
        if round_number % 2:
            (source / "round.txt").write_text(str(round_number))
        record = registry.create("big", source, description=f"round {round_number}")
        print(f"committed {record.spec.version}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
