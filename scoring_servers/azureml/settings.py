"""The server's settings: the command line plus the environment variables Azure ML defines.

Read once, in `__main__`, and passed down; nothing reads argv or the environment elsewhere.

Environment variables (as azureml-inference-server-http reads them):
- `AZUREML_ENTRY_SCRIPT`: the entry script when `--entry` is not given.
- `WORKER_COUNT` (default 1): threads that run `run()`; more than 1 means concurrent `run()` calls.
- `AZUREML_LOG_LEVEL` (default INFO): the root logging level, so `logging.info` lines of the
  script reach the instance log.
- `SCORING_TIMEOUT_MS` (optional): the longest a request waits for `run()`.
- `AZUREML_MODEL_DIR` is not read here; the script reads it.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from scoring_servers.azureml.errors import UsageError


@dataclass(frozen=True)
class ServerSettings:
    code_dir: Path
    entry_path: Path
    fd: int | None = None
    host: str = "127.0.0.1"
    port: int | None = None
    worker_count: int = 1
    log_level: int = logging.INFO
    scoring_timeout_s: float | None = None
    access_log: bool = False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scoring_servers.azureml",
        description="Serve an Azure ML scoring script (init()/run()) over HTTP.",
    )
    parser.add_argument("--code", help="the code folder; put on sys.path (default: the entry's folder)")
    parser.add_argument("--entry", help="the entry script, relative to --code (or $AZUREML_ENTRY_SCRIPT)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--fd", type=int, help="serve on this already bound, listening socket")
    where.add_argument("--port", type=int, help="bind this port (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind with --port")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    return parser


def parse_settings(argv: Sequence[str], environ: Mapping[str, str]) -> ServerSettings:
    args = _parser().parse_args(list(argv))
    entry_text = args.entry or environ.get("AZUREML_ENTRY_SCRIPT", "")
    if not entry_text:
        raise UsageError("no entry script: pass --entry score.py or set AZUREML_ENTRY_SCRIPT")
    code_dir, entry_path = _resolve_script(args.code, entry_text)
    if args.port is not None and not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {args.port}")
    if args.fd is not None and args.fd < 0:
        raise UsageError(f"--fd must be a non-negative file descriptor, got {args.fd}")
    return ServerSettings(
        code_dir=code_dir,
        entry_path=entry_path,
        fd=args.fd,
        host=args.host,
        port=args.port,
        worker_count=_worker_count(environ.get("WORKER_COUNT", "")),
        log_level=_log_level(environ.get("AZUREML_LOG_LEVEL", "")),
        scoring_timeout_s=_timeout_s(environ.get("SCORING_TIMEOUT_MS", "")),
        access_log=args.access_log,
    )


def _resolve_script(code: str | None, entry_text: str) -> tuple[Path, Path]:
    entry = Path(entry_text)
    if code is None:
        entry_path = entry.resolve()
        code_dir = entry_path.parent
    else:
        code_dir = Path(code).resolve()
        if not code_dir.is_dir():
            raise UsageError(f"--code {code}: not a folder")
        entry_path = (code_dir / entry).resolve()
    if entry_path.suffix != ".py":
        raise UsageError(f"entry script {entry_text}: must be a .py file")
    if not entry_path.is_file():
        raise UsageError(f"entry script {entry_text}: no such file {entry_path}")
    return code_dir, entry_path


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
        raise UsageError(f"SCORING_TIMEOUT_MS must be a whole number of milliseconds, got {text!r}") from None
    if millis <= 0:
        raise UsageError(f"SCORING_TIMEOUT_MS must be positive, got {millis}")
    return millis / 1000.0
