"""Setup, start, cleanup: socket, logging, script and init(), then uvicorn until a signal.

`init()` runs before uvicorn serves anything, so `GET /` cannot answer `Healthy` before it
finished (with `--fd`, probes queue in the supervisor's listen backlog meanwhile).
"""

from __future__ import annotations

import logging
import os

from scoring_servers.azureml.app import ScoringScriptApp
from scoring_servers.azureml.coalesce import CoalescingHttpToolsProtocol
from scoring_servers.azureml.cors import CorsPolicy
from scoring_servers.azureml.logs import configure_logging
from scoring_servers.azureml.run_signature import TEXT, RunSignature, analyse_run, original_function
from scoring_servers.azureml.runner import Runner
from scoring_servers.azureml.script import EntryScript, load_entry_script, run_init
from scoring_servers.azureml.settings import ServerSettings
from scoring_servers.azureml.swagger import Service, load_swagger
from scoring_servers.batching import Batcher, BatchSettings
from scoring_servers.listener import open_socket, run_until_stopped

logger = logging.getLogger("scoring_servers.azureml")


def serve(settings: ServerSettings) -> int:
    """Serve until SIGTERM/SIGINT; returns how many run() calls were still running at the end."""
    log_handler = configure_logging(settings.log_level)
    _export_environment(settings)
    sock = open_socket(settings.fd, settings.host, settings.port)
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
        run_until_stopped(app, sock, CoalescingHttpToolsProtocol, settings.access_log,
                          settings.log_level, logger)
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

