"""The server's settings: the command line plus the environment variables Azure ML defines.

Read once, in `__main__`, and passed down; nothing reads argv or the environment elsewhere.
The socket flags (`--fd`/`--port`/`--host`), `--access-log` and the variables below mean what
they mean for `python -m scoring_servers.azureml`, so a supervisor starts either server the same
way; both read them with `scoring_servers/settings.py`.

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

from scoring_servers import settings as common
from scoring_servers.batching import BatchSettings
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
    common.check_socket_flags(args.fd, args.port)
    worker_count = common.worker_count(environ)
    log_level = common.log_level(environ)
    scoring_timeout_s = common.scoring_timeout_s(environ)
    return ServerSettings(
        model_dir=resolve_model_dir(args.model_dir, environ),
        fd=args.fd,
        host=args.host,
        port=args.port,
        worker_count=worker_count,
        log_level=log_level,
        scoring_timeout_s=scoring_timeout_s,
        access_log=args.access_log,
        batching=common.batching(environ),
    )


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
