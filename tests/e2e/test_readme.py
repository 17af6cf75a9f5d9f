"""README.md's walkthrough runs as written: its shell blocks, parsed from the README itself, run
in order in one bash (`set -e`, so every command must exit 0) against `scoregate serve` on the
bundled example, so the README can no longer drift from what works.

The example is copied to a temporary checkout and its models are trained there; `scoregate`
on PATH is a shim running this checkout's code, with the state in a temporary SCOREGATE_HOME.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support.gateway import start_serve, trained_example
from tests.support.processes import REPO_ROOT, ProcessGroup

WALKTHROUGH = "## Walkthrough"
SHELL_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
PRELUDE = """set -euo pipefail
trap 'echo "README command failed (exit $?): $BASH_COMMAND" >&2' ERR
"""


def walkthrough_blocks(readme: str) -> list[str]:
    """The ```sh blocks of the walkthrough section (up to the next `## ` heading)."""
    section = readme.split(WALKTHROUGH, 1)[1]
    section = re.split(r"^## ", section, maxsplit=1, flags=re.MULTILINE)[0]
    return SHELL_BLOCK.findall(section)


def scoregate_shim(folder: Path) -> Path:
    """A `scoregate` command that runs this checkout's control plane with this interpreter."""
    folder.mkdir(parents=True, exist_ok=True)
    shim = folder / "scoregate"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m control_plane "$@"\n')
    shim.chmod(0o755)
    return folder


def test_the_parser_finds_the_walkthrough() -> None:
    readme = ("# x\n```sh\nbefore\n```\n## Walkthrough\ntext\n```sh\none\n```\n"
              "```python\nno\n```\n```sh\ntwo\nthree\n```\n## Next\n```sh\nafter\n```\n")
    assert walkthrough_blocks(readme) == ["one\n", "two\nthree\n"]


def test_the_readme_walkthrough_runs_as_written(processes: ProcessGroup, tmp_path: Path) -> None:
    blocks = walkthrough_blocks((REPO_ROOT / "README.md").read_text())
    assert len(blocks) >= 3, "the walkthrough's shell blocks were not found"
    checkout = tmp_path / "checkout"
    example = trained_example(checkout / "config" / "examples" / "blue-green")
    home = tmp_path / "home"
    start_serve(processes, home, str(example))
    env = dict(os.environ, SCOREGATE_HOME=str(home), PYTHONPATH=str(REPO_ROOT),
               PATH=f"{scoregate_shim(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}")
    env.pop("SCOREGATE_URL", None)
    script = tmp_path / "walkthrough.sh"
    script.write_text(PRELUDE + "\n".join(blocks))
    ran = subprocess.run(["bash", str(script)], cwd=checkout, env=env, capture_output=True,
                         text=True, timeout=400)
    output = f"{ran.stdout}\n{ran.stderr}"
    assert ran.returncode == 0, output
    assert "model 2: request received" in ran.stdout, output  # green got mirrored copies
    assert '"state": "succeeded"' in ran.stdout, output
