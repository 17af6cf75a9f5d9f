"""The one-way flow holds: the data plane and the scoring servers never import the control
plane, and the scoring servers import nothing else of scoregate (they are separate processes)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.processes import REPO_ROOT

FORBIDDEN = {
    "gateway": {"control_plane", "scoring_servers"},
    "scoring_servers": {"control_plane", "gateway"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_what_it_must_not(package: str) -> None:
    files = sorted((REPO_ROOT / package).rglob("*.py"))
    assert files, f"no modules found under {package}/"
    offending = {str(f.relative_to(REPO_ROOT)): sorted(imported_packages(f) & FORBIDDEN[package])
                 for f in files}
    assert {f: names for f, names in offending.items() if names} == {}


def test_the_check_sees_imports() -> None:
    source = REPO_ROOT / "control_plane" / "serve.py"
    assert {"gateway", "uvicorn"} <= imported_packages(source)
