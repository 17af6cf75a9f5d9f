"""Loading the entry script the way Azure ML does: its folder importable, wherever the cwd is;
`azureml.contrib.services` importable (contrib_services/aliases.py); and, like azmlinfsrv, the
run() of a generated `driver_module` when the script has one (init() stays the script's).
A `run_batch(list_of_raw_data)` beside run() opts the script in to batching (see runner.py)."""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scoring_servers.azureml.contrib_services.aliases import install_aliases
from scoring_servers.azureml.errors import ScriptError


@dataclass(frozen=True)
class EntryScript:
    path: Path
    init: Callable[[], Any]
    run: Callable[..., Any]
    run_batch: Callable[[list[Any]], Any] | None = None  # opts the script in to batching


def load_entry_script(code_dir: Path, entry_path: Path) -> EntryScript:
    """Import the script as a module named after its file (as `import score` would)."""
    for folder in (entry_path.parent, code_dir):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    name = entry_path.stem
    spec = importlib.util.spec_from_file_location(name, entry_path)
    if spec is None or spec.loader is None:
        raise ScriptError(f"cannot load {entry_path} as a Python module")
    install_aliases()
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # so pickles and dataclasses defined in the script resolve
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # the script's own error
        raise ScriptError(f"importing the entry script {entry_path} failed") from exc
    init = _function(module, "init", entry_path)
    run = _function(module, "run", entry_path)
    driver = getattr(module, "driver_module", None)
    if isinstance(driver, types.ModuleType) and callable(getattr(driver, "run", None)):
        run = driver.run
    run_batch = getattr(module, "run_batch", None)
    return EntryScript(entry_path, init, run, run_batch if callable(run_batch) else None)


def _function(module: object, name: str, path: Path) -> Callable[..., Any]:
    function = getattr(module, name, None)
    if not callable(function):
        raise ScriptError(f"the entry script {path} does not define a {name}() function")
    return function  # type: ignore[no-any-return]


def run_init(script: EntryScript) -> None:
    try:
        script.init()
    except (Exception, SystemExit) as exc:
        raise ScriptError(f"init() of {script.path} raised {type(exc).__name__}: {exc}") from exc
