"""The server's settings: the command line plus the environment variables Azure ML defines.

Read once, in `__main__`, and passed down; nothing reads argv or the environment elsewhere
(`server.py` exports `--model_dir` / `--worker_count` to the environment for the script, as
azmlinfsrv does).

Both command lines are accepted: scoregate's (`--code DIR --entry score.py --fd N`, what the
control plane runs) and azmlinfsrv's (`--entry_script`, `--model_dir`, `--port` (default 5001),
`--worker_count`, `--access_control_allow_origins`, `--appinsights_instrumentation_key`
(accepted, ignored)).

Environment variables (as azureml-inference-server-http reads them):
- `AZUREML_ENTRY_SCRIPT`: the entry script when neither `--entry` nor `--entry_script` is given,
  relative to the code folder.
- `AML_APP_ROOT`: the code folder when `--code` is not given (default: the entry's folder).
- `WORKER_COUNT` (default 1): threads that run `run()`; more than 1 means concurrent `run()` calls.
- `AML_CORS_ORIGINS`: comma-separated origins allowed by CORS (see cors.py).
- `HTTP_X_MS_SERVER_VERSION`, `SERVER_VERSION_LOG_RESPONSE_ENABLED`: the `x-ms-server-version`
  header's value, and whether to send it when no value is set.
- `SERVICE_NAME`, `SERVICE_VERSION`, `SERVICE_PATH_PREFIX`: fill the generated swagger.
- `AZUREML_LOG_LEVEL` (default INFO): the root logging level, so `logging.info` lines of the
  script reach the instance log.
- `SCORING_TIMEOUT_MS` (optional): the longest a request waits for `run()`.
- `SCOREGATE_BATCHING` (optional, scoregate's): `<max_batch_size>,<max_latency_ms>` turns on
  batching for a script that defines `run_batch` (scoring_servers/batching.py).
- `AZUREML_MODEL_DIR` is not read here; the script reads it.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from scoring_servers import settings as common
from scoring_servers.azureml.errors import UsageError
from scoring_servers.batching import BatchSettings

SERVER_VERSION = "scoregate-scoring-server/0.1.0"
DEFAULT_PORT = 5001  # azmlinfsrv's
DEFAULT_HOST = "127.0.0.1"  # not azmlinfsrv's 0.0.0.0: see docs/scoring-server.md


@dataclass(frozen=True)
class ServerSettings:
    code_dir: Path
    entry_path: Path
    fd: int | None = None
    host: str = DEFAULT_HOST
    port: int | None = None
    worker_count: int = 1
    log_level: int = logging.INFO
    scoring_timeout_s: float | None = None
    access_log: bool = False
    model_dir: str | None = None  # --model_dir: exported as AZUREML_MODEL_DIR
    worker_count_given: bool = False  # --worker_count: exported as WORKER_COUNT
    entry_script_given: bool = False  # --entry_script: exported as AZUREML_ENTRY_SCRIPT
    cors_origins: str | None = None
    server_version: str | None = SERVER_VERSION  # None: no x-ms-server-version header
    appinsights_key_given: bool = False
    service_name: str = "ML service"
    service_version: str = "1.0"
    service_path_prefix: str = ""
    batching: BatchSettings | None = None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scoring_servers.azureml",
        description="Serve an Azure ML scoring script (init()/run()) over HTTP.",
    )
    parser.add_argument("--code", help="the code folder; put on sys.path "
                                       "(default: $AML_APP_ROOT, else the entry's folder)")
    parser.add_argument("--entry",
                        help="the entry script, relative to --code (or $AZUREML_ENTRY_SCRIPT)")
    parser.add_argument("--entry_script", help="the entry script, relative to the current folder "
                                               "(azmlinfsrv's flag)")
    parser.add_argument("--model_dir", help="exported to the script as $AZUREML_MODEL_DIR")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--fd", type=int, help="serve on this already bound, listening socket")
    where.add_argument("--port", type=int, help=f"bind this port (0: any free port; default "
                                                f"{DEFAULT_PORT})")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to bind with --port (default {DEFAULT_HOST})")
    parser.add_argument("--worker_count", type=int,
                        help="threads that run run() (default $WORKER_COUNT, else 1)")
    parser.add_argument("--access_control_allow_origins",
                        help="enable CORS for these comma-separated origins ($AML_CORS_ORIGINS)")
    parser.add_argument("--appinsights_instrumentation_key",
                        help="accepted for azmlinfsrv compatibility and ignored")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    return parser


def parse_settings(argv: Sequence[str], environ: Mapping[str, str]) -> ServerSettings:
    args = _parser().parse_args(list(argv))
    if args.entry and args.entry_script:
        raise UsageError("pass either --entry or --entry_script, not both")
    code = args.code or environ.get("AML_APP_ROOT") or None
    if args.entry_script:
        code_dir, entry_path = _resolve_script(code, str(Path(args.entry_script).resolve()))
    else:
        entry_text = args.entry or environ.get("AZUREML_ENTRY_SCRIPT", "")
        if not entry_text:
            raise UsageError("no entry script: pass --entry_script score.py (or --entry) "
                             "or set AZUREML_ENTRY_SCRIPT")
        code_dir, entry_path = _resolve_script(code, entry_text)
    port = args.port if args.port is not None or args.fd is not None else DEFAULT_PORT
    common.check_socket_flags(args.fd, port)
    if args.worker_count is not None and args.worker_count < 1:
        raise UsageError(f"--worker_count must be at least 1, got {args.worker_count}")
    worker_count = (args.worker_count if args.worker_count is not None
                    else common.worker_count(environ))
    cors = args.access_control_allow_origins
    return ServerSettings(
        code_dir=code_dir,
        entry_path=entry_path,
        fd=args.fd,
        host=args.host,
        port=port,
        worker_count=worker_count,
        log_level=common.log_level(environ),
        scoring_timeout_s=common.scoring_timeout_s(environ),
        access_log=args.access_log,
        model_dir=args.model_dir,
        worker_count_given=args.worker_count is not None,
        entry_script_given=bool(args.entry_script),
        cors_origins=cors if cors is not None else environ.get("AML_CORS_ORIGINS"),
        server_version=_server_version(environ),
        appinsights_key_given=args.appinsights_instrumentation_key is not None,
        service_name=environ.get("SERVICE_NAME", "ML service"),
        service_version=environ.get("SERVICE_VERSION", "1.0"),
        service_path_prefix=environ.get("SERVICE_PATH_PREFIX", ""),
        batching=common.batching(environ),
    )


def _server_version(environ: Mapping[str, str]) -> str | None:
    """azmlinfsrv's rule: `HTTP_X_MS_SERVER_VERSION` when set; else ours, unless
    `SERVER_VERSION_LOG_RESPONSE_ENABLED` is set to something other than true."""
    given = environ.get("HTTP_X_MS_SERVER_VERSION")
    if given is not None:
        return given or None
    enabled = environ.get("SERVER_VERSION_LOG_RESPONSE_ENABLED", "true").lower() == "true"
    return SERVER_VERSION if enabled else None


def _resolve_script(code: str | None, entry_text: str) -> tuple[Path, Path]:
    entry = Path(entry_text)
    if code is None:
        entry_path = entry.resolve()
        code_dir = entry_path.parent
    else:
        code_dir = Path(code).resolve()
        if not code_dir.is_dir():
            raise UsageError(f"code folder {code}: not a folder")
        entry_path = (code_dir / entry).resolve()
    if entry_path.suffix != ".py":
        raise UsageError(f"entry script {entry_text}: must be a .py file")
    if not entry_path.is_file():
        raise UsageError(f"entry script {entry_text}: no such file {entry_path}")
    return code_dir, entry_path
