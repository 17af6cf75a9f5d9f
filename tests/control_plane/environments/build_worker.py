"""A builder in a process of its own (for the concurrency and kill -9 tests):
`python -m tests.control_plane.environments.build_worker ROOT CACHE INTERPRETER REQ...`
prints one JSON line per progress phase, then `{"key", "built_now", "path"}`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from control_plane.environments.builder import Builder
from control_plane.environments.interpreters import probe
from control_plane.environments.progress import Progress


def main(argv: list[str]) -> int:
    root, cache, python, *requirements = argv
    interpreter = probe(Path(python))
    if interpreter is None:
        print(f"not an interpreter: {python}", file=sys.stderr)
        return 2

    def say(progress: Progress) -> None:
        print(json.dumps({"phase": progress.phase}), flush=True)

    built = Builder(Path(root), Path(cache)).build(interpreter, requirements, say)
    print(json.dumps({"key": built.key, "built_now": built.built_now, "path": str(built.path)}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
