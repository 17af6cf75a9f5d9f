"""Setup, start, cleanup: socket, logging, model, then uvicorn until a signal.

The model is loaded before uvicorn serves anything, so `GET /` cannot answer `Healthy` before
it is (with `--fd`, probes queue in the supervisor's listen backlog meanwhile). The socket
helpers restate `scoring_servers/azureml/server.py`'s (a few lines; that package is changing).
The one thing imported from it is its coalescing HTTP protocol (one write per answer), and
only if it is there: without it uvicorn's own httptools protocol serves, a little slower.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

import uvicorn

from scoring_servers.batching import Batcher
from scoring_servers.mlflow.app import MlflowModelApp
from scoring_servers.mlflow.errors import UsageError
from scoring_servers.mlflow.loading import ServedModel, load_served_model
from scoring_servers.mlflow.numeric_frames import double_columns
from scoring_servers.mlflow.payload import ScoringRequest, parse_request
from scoring_servers.mlflow.prediction import encode_predictions, predict
from scoring_servers.mlflow.runner import BatchItem, Runner, Score, ScoreBatch
from scoring_servers.mlflow.settings import ServerSettings
from scoring_servers.mlflow.stacking import score_batch
from scoring_servers.mlflow.swagger import build_swagger

try:
    from scoring_servers.azureml.coalesce import CoalescingHttpToolsProtocol
    HTTP_PROTOCOL: Any = CoalescingHttpToolsProtocol
except ImportError:  # pragma: no cover - only if that module moves
    HTTP_PROTOCOL = "httptools"

logger = logging.getLogger("scoring_servers.mlflow")

BACKLOG = 2048
GRACEFUL_SHUTDOWN_S = 10
LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


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


_AF_UNIX = getattr(socket, "AF_UNIX", -1)  # a managed instance's socket (not on Windows)
_STREAM_FAMILIES = (socket.AF_INET, socket.AF_INET6, _AF_UNIX)


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


def scorer(model: ServedModel) -> tuple[Score, ScoreBatch]:
    """Request body → answer body: parse (MLflow's parsers), predict, encode; and the same for
    a batch of bodies (stacking.py)."""
    schema = model.signature.inputs if model.signature is not None else None
    doubles = double_columns(schema)

    def parse_rows(body: bytes) -> ScoringRequest:
        return parse_request(body, schema, model.hinted, doubles, rows=True)

    def score(body: bytes) -> bytes:
        request = parse_request(body, schema, model.hinted, doubles)
        return encode_predictions(predict(model, request.data, request.params),
                                  request.mlflow_format)

    def batch(bodies: Sequence[bytes]) -> list[bytes | Exception]:
        return score_batch(model, parse_rows, bodies)

    return score, batch


def serve(settings: ServerSettings) -> int:
    """Serve until SIGTERM/SIGINT; returns how many predictions were still running at the end."""
    logging.basicConfig(level=settings.log_level, format=LOG_FORMAT, stream=sys.stdout,
                        force=True)
    sock = open_socket(settings)
    try:
        logger.info("loading the MLflow model in %s", settings.model_dir)
        model = load_served_model(settings.model_dir)
        swagger = build_swagger(settings.model_dir.name or "mlflow-model", model.signature,
                                model.input_example)
        logger.info("model loaded (loader %s); %d worker thread(s) for predict",
                    model.loader_module, settings.worker_count)
        score, batch = scorer(model)
        runner = Runner(score, settings.worker_count, settings.scoring_timeout_s, batch)
        batcher = None
        if settings.batching is not None:
            logger.info("batching: up to %d requests per predict, closed %g ms after the first",
                        settings.batching.max_batch_size, settings.batching.max_latency_s * 1000)
            batcher = Batcher[BatchItem](settings.batching, runner.submit_batch)
        config = uvicorn.Config(
            MlflowModelApp(runner, swagger, batcher), loop="uvloop", http=HTTP_PROTOCOL, ws="none",
            lifespan="on", access_log=settings.access_log, log_config=None,
            log_level=settings.log_level, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            proxy_headers=False, server_header=False, date_header=False)
        print(f"listening on {listening_url(sock)}", flush=True)
        _absorb_stop_signals()
        uvicorn.Server(config).run(sockets=[sock])
        runner.close()
        return runner.busy
    finally:
        sock.close()
        sys.stdout.flush()


def _absorb_stop_signals() -> None:
    """uvicorn re-raises the stop signal after its graceful shutdown; with these handlers in
    place that re-raise is a no-op, so the process ends with exit code 0 after a clean stop."""
    def ignore(signum: int, frame: FrameType | None) -> None:
        logger.info("stopping on signal %d", signum)

    signal.signal(signal.SIGTERM, ignore)
    signal.signal(signal.SIGINT, ignore)
