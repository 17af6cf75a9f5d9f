"""The server's settings: the command line plus the environment variables Azure ML defines.

Read once, in `__main__`, and passed down; nothing reads argv or the environment elsewhere.
The socket flags (`--fd`/`--port`/`--host`), `--access-log` and the variables below mean what
they mean for `python -m scoring_servers.azureml`, so a supervisor starts either server the same
way. The env parsing is restated from `scoring_servers/azureml/settings.py` (a few lines, its
helpers are private and that package is changing) rather than imported.

Where the model is:
- `--model_dir DIR` (or `--model-dir`): the MLflow model folder, the one holding `MLmodel`;
- else `$AZUREML_MODEL_DIR/$MLFLOW_MODEL_FOLDER`, as Azure ML's no-code deployment finds it;
- else `$AZUREML_MODEL_DIR` itself if it holds `MLmodel`, or its only subfolder holding one
  (Azure mounts a model registered from `.../model/` as `$AZUREML_MODEL_DIR/model`).

Environment variables (as azureml-inference-server-http reads them):
- `WORKER_COUNT` (default 1): threads that call `predict`; more than 1 means concurrent calls.
- `AZUREML_LOG_LEVEL` (default INFO): the root logging level.
- `SCORING_TIMEOUT_MS` (optional): the longest a request waits for its prediction.
- `SCOREGATE_BATCHING` (optional, scoregate's): `<max_batch_size>,<max_latency_ms>` turns on
  native batching (scoring_servers/batching.py, stacking.py).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from scoring_servers.batching import BatchSettings, parse_batching
from scoring_servers.mlflow.errors import UsageError

MLMODEL = "MLmodel"


@dataclass(frozen=True)
class ServerSettings:
    model_dir: Path
    fd: int | None = None
    host: str = "127.0.0.1"
    port: int | None = None
    worker_count: int = 1
    log_level: int = logging.INFO
    scoring_timeout_s: float | None = None
    access_log: bool = False
    batching: BatchSettings | None = None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scoring_servers.mlflow",
        description="Serve an MLflow model (pyfunc flavour) over HTTP, no scoring script needed.",
    )
    parser.add_argument("--model_dir", "--model-dir", dest="model_dir",
                        help="the MLflow model folder (default: from $AZUREML_MODEL_DIR)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--fd", type=int, help="serve on this already bound, listening socket")
    where.add_argument("--port", type=int, help="bind this port (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind with --port")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    return parser


def parse_settings(argv: Sequence[str], environ: Mapping[str, str]) -> ServerSettings:
    args = _parser().parse_args(list(argv))
    if args.port is not None and not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {args.port}")
    if args.fd is not None and args.fd < 0:
        raise UsageError(f"--fd must be a non-negative file descriptor, got {args.fd}")
    worker_count = _worker_count(environ.get("WORKER_COUNT", ""))
    log_level = _log_level(environ.get("AZUREML_LOG_LEVEL", ""))
    scoring_timeout_s = _timeout_s(environ.get("SCORING_TIMEOUT_MS", ""))
    return ServerSettings(
        model_dir=resolve_model_dir(args.model_dir, environ),
        fd=args.fd,
        host=args.host,
        port=args.port,
        worker_count=worker_count,
        log_level=log_level,
        scoring_timeout_s=scoring_timeout_s,
        access_log=args.access_log,
        batching=_batching(environ),
    )


def _batching(environ: Mapping[str, str]) -> BatchSettings | None:
    try:
        return parse_batching(environ)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def resolve_model_dir(model_dir: str | None, environ: Mapping[str, str]) -> Path:
    """The folder holding `MLmodel` (see the module docstring for where it is looked for)."""
    if model_dir:
        folder = Path(model_dir)
        where = f"--model_dir {model_dir}"
    else:
        base = environ.get("AZUREML_MODEL_DIR", "")
        if not base:
            raise UsageError("no model: pass --model_dir DIR or set AZUREML_MODEL_DIR")
        sub = environ.get("MLFLOW_MODEL_FOLDER", "")
        folder = Path(base) / sub if sub else _only_model_in(Path(base))
        where = f"AZUREML_MODEL_DIR={base}" + (f" MLFLOW_MODEL_FOLDER={sub}" if sub else "")
    # Resolved: MLflow refuses a model folder reached through a symlink ("resolved path is
    # outside the artifact directory"), and the control plane links AZUREML_MODEL_DIR/<name>.
    folder = folder.resolve()
    if not folder.is_dir():
        raise UsageError(f"{where}: no such folder {folder}")
    if not (folder / MLMODEL).is_file():
        raise UsageError(f"{where}: {folder} has no {MLMODEL} file; is it an MLflow model?")
    return folder


def _only_model_in(base: Path) -> Path:
    """`base` if it is a model, else its one subfolder that is (else `base`, to be reported)."""
    if (base / MLMODEL).is_file() or not base.is_dir():
        return base
    models = [child for child in sorted(base.iterdir()) if (child / MLMODEL).is_file()]
    if len(models) > 1:
        names = ", ".join(child.name for child in models)
        raise UsageError(f"AZUREML_MODEL_DIR={base} holds several MLflow models ({names}): "
                         "set MLFLOW_MODEL_FOLDER or pass --model_dir")
    return models[0] if models else base


def _worker_count(text: str) -> int:
    if not text.strip():
        return 1
    try:
        count = int(text)
    except ValueError:
        raise UsageError(f"WORKER_COUNT must be a whole number, got {text!r}") from None
    if count < 1:
        raise UsageError(f"WORKER_COUNT must be at least 1, got {count}")
    return count


def _log_level(text: str) -> int:
    name = text.strip().upper() or "INFO"
    if name.isdigit():
        return int(name)
    level = logging.getLevelNamesMapping().get(name)
    if level is None:
        raise UsageError(
            f"AZUREML_LOG_LEVEL {text!r} is not a logging level "
            "(DEBUG, INFO, WARNING, ERROR, CRITICAL or a number)"
        )
    return level


def _timeout_s(text: str) -> float | None:
    if not text.strip():
        return None
    try:
        millis = int(text)
    except ValueError:
        raise UsageError(
            f"SCORING_TIMEOUT_MS must be a whole number of milliseconds, got {text!r}") from None
    if millis <= 0:
        raise UsageError(f"SCORING_TIMEOUT_MS must be positive, got {millis}")
    return millis / 1000.0
