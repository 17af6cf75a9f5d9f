"""Setup, start, cleanup: socket, logging, script and init(), then uvicorn until a signal.

`init()` runs before uvicorn serves anything, so `GET /` cannot answer `Healthy` before it
finished (with `--fd`, probes queue in the supervisor's listen backlog meanwhile).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from types import FrameType

import uvicorn

from scoring_servers.azureml.app import ScoringScriptApp
from scoring_servers.azureml.coalesce import CoalescingHttpToolsProtocol
from scoring_servers.azureml.cors import CorsPolicy
from scoring_servers.azureml.errors import UsageError
from scoring_servers.azureml.logs import configure_logging
from scoring_servers.azureml.run_signature import TEXT, RunSignature, analyse_run, original_function
from scoring_servers.azureml.runner import Runner
from scoring_servers.azureml.script import EntryScript, load_entry_script, run_init
from scoring_servers.azureml.settings import ServerSettings
from scoring_servers.azureml.swagger import Service, load_swagger
from scoring_servers.batching import Batcher, BatchSettings

logger = logging.getLogger("scoring_servers.azureml")

BACKLOG = 2048
_AF_UNIX = getattr(socket, "AF_UNIX", -1)  # a managed instance's socket (not on Windows)
_STREAM_FAMILIES = (socket.AF_INET, socket.AF_INET6, _AF_UNIX)
GRACEFUL_SHUTDOWN_S = 10


def open_socket(settings: ServerSettings) -> socket.socket:
    if settings.fd is not None:
        return _adopt_socket(settings.fd)
    try:
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.host, settings.port or 0))
        sock.listen(BACKLOG)
    except OSError as exc:
        raise UsageError(f"cannot listen on {settings.host}:{settings.port}: {exc}") from exc
    return sock


def _adopt_socket(fd: int) -> socket.socket:
    """The supervisor's socket: it keeps the port across restarts of this process."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise UsageError(f"--fd {fd} is not an open socket: {exc}") from exc
    if sock.type != socket.SOCK_STREAM or sock.family not in _STREAM_FAMILIES:
        raise UsageError(f"--fd {fd} is not a TCP or Unix stream socket")
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        sock.listen(BACKLOG)
    return sock


def listening_url(sock: socket.socket) -> str:
    if sock.family == _AF_UNIX:
        return f"unix:{sock.getsockname()}"
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(settings: ServerSettings) -> int:
    """Serve until SIGTERM/SIGINT; returns how many run() calls were still running at the end."""
    log_handler = configure_logging(settings.log_level)
    _export_environment(settings)
    sock = open_socket(settings)
    try:
        script = load_entry_script(settings.code_dir, settings.entry_path)
        signature = analyse_run(script.run)
        logger.info("run() takes its input as %s%s", signature.mode,
                    " with request_headers" if signature.wants_headers else "")
        logger.info("calling init() of %s", settings.entry_path)
        run_init(script)
        logger.info("init() finished; %d worker thread(s) for run()", settings.worker_count)
        swagger = load_swagger(settings.code_dir, script.run, Service(
            settings.service_name, settings.service_version, settings.service_path_prefix))
        code = getattr(original_function(script.run), "__code__", None)
        runner = Runner(script.run, settings.worker_count, settings.scoring_timeout_s, code,
                        script.run_batch)
        batching = _batching(settings.batching, script, signature)
        app = ScoringScriptApp(runner, signature, swagger, log_handler.flush_periodically,
                               CorsPolicy.parse(settings.cors_origins), settings.server_version,
                               Batcher(batching, runner.submit_batch) if batching else None)
        config = uvicorn.Config(
            app, loop="uvloop",
            http=CoalescingHttpToolsProtocol, ws="none", lifespan="on",
            access_log=settings.access_log, log_config=None, log_level=settings.log_level,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            # Per-request work we do not need: X-Forwarded-* parsing, Date and Server headers.
            proxy_headers=False, server_header=False, date_header=False)
        print(f"listening on {listening_url(sock)}", flush=True)
        _absorb_stop_signals()
        uvicorn.Server(config).run(sockets=[sock])
        runner.close()
        return runner.busy
    finally:
        sock.close()
        log_handler.immediate = True
        log_handler.flush_pending()


def _batching(settings: BatchSettings | None, script: EntryScript,
              signature: RunSignature) -> BatchSettings | None:
    """Batching only where run_batch can stand in for run(): a plain run(raw_data)."""
    if settings is None:
        return None
    if script.run_batch is None:
        logger.info("batching is configured, but %s defines no run_batch(): each request is "
                    "scored alone", script.path.name)
        return None
    if signature.mode != TEXT or signature.wants_headers:
        logger.warning("batching is configured, but run_batch() is not used: run() takes %s",
                       "request_headers" if signature.wants_headers else
                       f"its input as {signature.mode}")
        return None
    logger.info("batching: up to %d requests per run_batch() call, closed %g ms after the "
                "first", settings.max_batch_size, settings.max_latency_s * 1000)
    return settings


def _export_environment(settings: ServerSettings) -> None:
    """What azmlinfsrv's command line exports for the script to read."""
    if settings.entry_script_given:
        os.environ["AZUREML_ENTRY_SCRIPT"] = str(settings.entry_path)
    if settings.model_dir is not None:
        os.environ["AZUREML_MODEL_DIR"] = settings.model_dir
    if settings.worker_count_given:
        os.environ["WORKER_COUNT"] = str(settings.worker_count)
    if settings.appinsights_key_given:
        logger.info("--appinsights_instrumentation_key is ignored: this server sends no "
                    "telemetry to Application Insights")


def _absorb_stop_signals() -> None:
    """uvicorn re-raises the stop signal after its graceful shutdown; with these handlers in
    place that re-raise is a no-op, so the process ends with exit code 0 after a clean stop."""
    def ignore(signum: int, frame: FrameType | None) -> None:
        logger.info("stopping on signal %d", signum)

    signal.signal(signal.SIGTERM, ignore)
    signal.signal(signal.SIGINT, ignore)
