"""The import rules of the tree, checked on its source (see docs/architecture.md).

- The data plane and the scoring servers never import the control plane, and the scoring
  servers import nothing else of scoregate (they are separate processes).
- The control plane imports only `gateway`'s public names (`gateway.__all__`).
- `control_plane/store/` imports no feature package; feature packages never import each other
  (they meet in `runtime` and `serve`).
- `control_plane/cli/` talks to the server over HTTP only: it imports `errors`, `home`, `specs`
  and itself.
- Layers: a control-plane module imports only from its own layer or lower ones.
- No import cycle anywhere.

Every import counts: absolute and relative, at module level, inside functions and under
`if TYPE_CHECKING:` (an import inside a function is how a cycle usually hides).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import REPO_ROOT

ROOTS = ("control_plane", "gateway", "scoring_servers", "tests", "benchmarks")
FORBIDDEN = {
    "gateway": {"control_plane", "scoring_servers"},
    "scoring_servers": {"control_plane", "gateway"},
}
FEATURES = ("rollouts", "registry", "environments", "events", "autodeploy", "autoscaling", "jobs",
            "monitoring")
CLI_MAY_IMPORT = ("errors", "home", "specs", "cli")
# control_plane.<first part> → layer; a module may import its own layer and lower ones.
LAYERS: dict[str, int] = {
    "errors": 0, "tasks": 0,
    "home": 1,
    "specs": 2,
    "store": 3,
    "instances": 4, **dict.fromkeys(FEATURES, 4),
    "compile": 5,
    "runtime": 6,
    "admin": 7,
    "serve": 8, "compare_flags": 8,  # compare_flags: serve's shadow-compare flags
    "workers": 8,  # serve's data-plane worker processes (docs/workers.md)
    "cli": 9, "entry": 9, "__main__": 9, "": 9,  # "": the package's own __init__ (façade)
}
LAYER_NAMES = ("errors", "home", "specs", "store", "features/instances", "compile", "runtime",
               "admin", "serve", "entry points (cli, entry, __main__)")


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (a module of the tree when it is one)
    names: tuple[str, ...]  # `from target import names`; () for `import target`
    line: int

    def where(self, tree: ImportTree) -> str:
        return f"{tree.paths[self.source]}:{self.line}"


@dataclass(frozen=True)
class ImportTree:
    """The modules found under `root`'s top-level packages and every import they make."""

    root: Path
    paths: Mapping[str, str]  # module → path relative to root
    imports: tuple[Import, ...]

    @classmethod
    def scan(cls, root: Path, tops: Iterable[str] = ROOTS) -> ImportTree:
        files = {module_name(path.relative_to(root)): path
                 for top in tops for path in sorted((root / top).rglob("*.py"))}
        found: list[Import] = []
        for module, path in files.items():
            found.extend(imports_of(module, path, set(files)))
        return cls(root, {m: str(p.relative_to(root)) for m, p in files.items()},
                   tuple(found))

    def from_package(self, package: str) -> Iterator[Import]:
        return (i for i in self.imports if in_package(i.source, package))

    def graph(self) -> dict[str, set[str]]:
        edges: dict[str, set[str]] = {module: set() for module in self.paths}
        for found in self.imports:
            if found.target in self.paths and found.target != found.source:
                edges[found.source].add(found.target)
        return edges


def module_name(relative: Path) -> str:
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def imports_of(module: str, path: Path, modules: set[str]) -> Iterator[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, (), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(package, node.level, node.module)
            names = tuple(alias.name for alias in node.names)
            submodules = [f"{base}.{name}" for name in names if f"{base}.{name}" in modules]
            for submodule in submodules:  # `from pkg import module`
                yield Import(module, submodule, (), node.lineno)
            rest = tuple(name for name in names if f"{base}.{name}" not in modules)
            if rest or not submodules:
                yield Import(module, base, rest, node.lineno)


def _absolute(package: str, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    parts = package.split(".") if package else []
    base = parts[:len(parts) - (level - 1)] if level > 1 else parts
    return ".".join([*base, name] if name else base)


def top(module: str) -> str:
    return module.split(".")[0]


def part(module: str) -> str:
    """`control_plane.rollouts.engine` → `rollouts`; `control_plane` → ``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (or a self-loop)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:  # iterative: deep import chains must not hit recursion limits
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


# --- the rules, each a function of the tree so the self-test can plant a violation ---------

def forbidden_imports(tree: ImportTree) -> list[str]:
    return [f"{i.where(tree)} imports {i.target}" for package, banned in FORBIDDEN.items()
            for i in tree.from_package(package) if top(i.target) in banned]


def gateway_internals_used(tree: ImportTree, public: set[str]) -> list[str]:
    """The control plane reaches the data plane through `gateway`'s public names only."""
    bad: list[str] = []
    for i in tree.from_package("control_plane"):
        if top(i.target) != "gateway":
            continue
        if i.target != "gateway":
            bad.append(f"{i.where(tree)} imports {i.target} (use `from gateway import X`)")
        elif not set(i.names) <= public:
            bad.append(f"{i.where(tree)} imports {sorted(set(i.names) - public)} from gateway, "
                       f"which are not in gateway.__all__")
    return bad


def store_imports_features(tree: ImportTree) -> list[str]:
    return [f"{i.where(tree)} imports {i.target}"
            for i in tree.from_package("control_plane.store")
            if top(i.target) == "control_plane" and part(i.target) in FEATURES]


def features_import_each_other(tree: ImportTree) -> list[str]:
    bad: list[str] = []
    for feature in FEATURES:
        for i in tree.from_package(f"control_plane.{feature}"):
            other = part(i.target)
            if top(i.target) == "control_plane" and other in FEATURES and other != feature:
                bad.append(f"{i.where(tree)} imports {i.target}: features meet in runtime/serve")
    return bad


def cli_imports_beyond_http(tree: ImportTree) -> list[str]:
    bad: list[str] = []
    for i in tree.from_package("control_plane.cli"):
        if top(i.target) in ("gateway", "scoring_servers") or (
                top(i.target) == "control_plane" and part(i.target) not in CLI_MAY_IMPORT):
            bad.append(f"{i.where(tree)} imports {i.target}: the CLI may import only "
                       f"{', '.join(CLI_MAY_IMPORT)}")
    return bad


def layer_violations(tree: ImportTree) -> list[str]:
    bad: list[str] = []
    for i in tree.from_package("control_plane"):
        if top(i.target) != "control_plane":
            continue
        source, target = part(i.source), part(i.target)
        if source not in LAYERS or target not in LAYERS:
            bad.append(f"{i.where(tree)}: control_plane.{source or target} has no layer in "
                       f"LAYERS (add it)")
        elif LAYERS[target] > LAYERS[source]:
            bad.append(f"{i.where(tree)} imports {i.target}: layer "
                       f"{LAYER_NAMES[LAYERS[target]]} is above {LAYER_NAMES[LAYERS[source]]}")
    return bad


def gateway_public_names(root: Path) -> set[str] | None:
    """`gateway.__all__` read from its source, or None when it has none."""
    init = ast.parse((root / "gateway" / "__init__.py").read_text())
    for node in init.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                assert node.value is not None
                return {str(v) for v in ast.literal_eval(node.value)}
    return None


# --- the tests ----------------------------------------------------------------------------

TREE = ImportTree.scan(REPO_ROOT)


def test_the_tree_was_found() -> None:
    for package in ("control_plane", "gateway", "scoring_servers"):
        assert any(in_package(m, package) for m in TREE.paths), package
    assert any(i.target == "gateway" or i.target.startswith("gateway.")
               for i in TREE.from_package("control_plane"))


def test_data_plane_and_scoring_servers_do_not_import_what_they_must_not() -> None:
    assert forbidden_imports(TREE) == []


@pytest.mark.skipif(gateway_public_names(REPO_ROOT) is None,
                    reason="waits for the gateway seams branch")
def test_control_plane_imports_only_gateways_public_names() -> None:
    public = gateway_public_names(REPO_ROOT)
    assert public is not None
    assert gateway_internals_used(TREE, public) == []


def test_store_imports_no_feature() -> None:
    assert store_imports_features(TREE) == []


def test_features_do_not_import_each_other() -> None:
    assert features_import_each_other(TREE) == []


def test_cli_talks_to_the_server_over_http_only() -> None:
    assert cli_imports_beyond_http(TREE) == []


def test_control_plane_layers_import_downwards_only() -> None:
    assert layer_violations(TREE) == []


def test_no_import_cycle_anywhere() -> None:
    found = cycles(TREE.graph())
    assert found == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_checks_see_planted_violations(tmp_path: Path) -> None:
    files = {
        "gateway/__init__.py": "__all__ = ['ScoringApp']\n",
        "gateway/app.py": "def f():\n    from control_plane import serve\n",
        "gateway/inner.py": "",
        "scoring_servers/__init__.py": "",
        "scoring_servers/s.py": "import gateway.app\n",
        "control_plane/__init__.py": "",
        "control_plane/errors.py": "",
        "control_plane/serve.py": "from gateway import ScoringApp, inner\n",
        "control_plane/store/__init__.py": "",
        "control_plane/store/db.py": "from ..rollouts import rows\n",
        "control_plane/rollouts/__init__.py": "",
        "control_plane/rollouts/rows.py": "from control_plane.registry.models import x\n",
        "control_plane/registry/__init__.py": "",
        "control_plane/registry/models.py": "def g():\n    import control_plane.rollouts.rows\n",
        "control_plane/cli/__init__.py": "",
        "control_plane/cli/main.py": "from control_plane.store import db\nfrom . import verbs\n",
        "control_plane/cli/verbs.py": "from control_plane.cli.main import main\n",
        "control_plane/specs/__init__.py": "",
        "control_plane/specs/s.py": "from control_plane.runtime import Runtime\n",
        "control_plane/runtime.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    tree = ImportTree.scan(tmp_path, ("control_plane", "gateway", "scoring_servers"))

    assert forbidden_imports(tree) == ["gateway/app.py:2 imports control_plane.serve",
                                       "scoring_servers/s.py:1 imports gateway.app"]
    assert gateway_internals_used(tree, {"ScoringApp"}) == [
        "control_plane/serve.py:1 imports gateway.inner (use `from gateway import X`)"]
    assert store_imports_features(tree) == [
        "control_plane/store/db.py:1 imports control_plane.rollouts.rows"]
    assert len(features_import_each_other(tree)) == 2  # rollouts → registry, and back
    assert cli_imports_beyond_http(tree) == [
        "control_plane/cli/main.py:1 imports control_plane.store.db: the CLI may import only "
        "errors, home, specs, cli"]
    assert layer_violations(tree) == [
        "control_plane/specs/s.py:1 imports control_plane.runtime: layer runtime is above specs",
        "control_plane/store/db.py:1 imports control_plane.rollouts.rows: layer "
        "features/instances is above store"]
    assert sorted(cycles(tree.graph())) == [
        ["control_plane.cli.main", "control_plane.cli.verbs"],
        ["control_plane.registry.models", "control_plane.rollouts.rows"]]
