"""An environment's key: what makes two environments the same, hashed.

Two deployments share a built environment exactly when they would get the same bytes: the
same interpreter version, the same normalised requirements, and the same scoring server (its
code is copied into every environment, and its runtime requirements installed there).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from collections.abc import Sequence
from pathlib import Path

KEY_LENGTH = 24
FORMAT = 1  # bump when the layout of a built environment changes

# What the scoring servers import beyond the stdlib (uvicorn with the httptools protocol, on
# uvloop); markers chosen so the newest release that still supports the interpreter is picked,
# down to Python 3.8.
SERVER_REQUIREMENTS: tuple[str, ...] = (
    "httptools>=0.6",
    "uvicorn>=0.30",
    "uvloop>=0.19; sys_platform != 'win32'",
)

_VERSION = re.compile(r"""^__version__\s*=\s*["']([^"']+)["']""", re.MULTILINE)


def server_root() -> Path:
    """The `scoring_servers` package folder (found, not imported: the control plane never
    imports the scoring servers)."""
    spec = importlib.util.find_spec("scoring_servers")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the scoring_servers package is not installed beside control_plane")
    return Path(list(spec.submodule_search_locations)[0]).resolve()


def server_version(root: Path | None = None) -> str:
    """`__version__` of `scoring_servers/__init__.py` when it has one, else a hash of the
    package's sources (so any edit to the server gives environments a new key)."""
    root = root or server_root()
    found = _VERSION.search((root / "__init__.py").read_text())
    if found:
        return found[1]
    digest = hashlib.sha256()
    for path in server_sources(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return "src-" + digest.hexdigest()[:16]


def server_sources(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def environment_key(python_version: str, requirements: Sequence[str], server: str) -> str:
    material = json.dumps({"format": FORMAT, "python": python_version,
                           "requirements": list(requirements), "server": server,
                           "server_requirements": list(SERVER_REQUIREMENTS)}, sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()[:KEY_LENGTH]
