"""Setup, start, cleanup: socket, logging, model, then uvicorn until a signal.

The model is loaded before uvicorn serves anything, so `GET /` cannot answer `Healthy` before
it is (with `--fd`, probes queue in the supervisor's listen backlog meanwhile). The socket
and the uvicorn run are `scoring_servers/listener.py`'s, as for the azureml server. The one
thing imported from that server is its coalescing HTTP protocol (one write per answer), and
only if it is there: without it uvicorn's own httptools protocol serves, a little slower.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from scoring_servers.batching import Batcher
from scoring_servers.listener import open_socket, run_until_stopped
from scoring_servers.mlflow.app import MlflowModelApp
from scoring_servers.mlflow.loading import ServedModel, load_served_model
from scoring_servers.mlflow.numeric_frames import double_columns
from scoring_servers.mlflow.payload import ScoringRequest, parse_request
from scoring_servers.mlflow.prediction import encode_predictions, predict
from scoring_servers.mlflow.runner import Runner
from scoring_servers.mlflow.settings import ServerSettings
from scoring_servers.mlflow.stacking import score_batch
from scoring_servers.mlflow.swagger import build_swagger

if TYPE_CHECKING:  # annotations only (Python 3.8 cannot subscript them at run time)
    from scoring_servers.mlflow.runner import BatchItem, Score, ScoreBatch

try:
    from scoring_servers.azureml.coalesce import CoalescingHttpToolsProtocol
    HTTP_PROTOCOL: Any = CoalescingHttpToolsProtocol
except ImportError:  # pragma: no cover - only if that module moves
    HTTP_PROTOCOL = "httptools"

logger = logging.getLogger("scoring_servers.mlflow")

LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


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
    sock = open_socket(settings.fd, settings.host, settings.port)
    try:
        logger.info("loading the MLflow model in %s", settings.model_dir)
        model = load_served_model(settings.model_dir)
        swagger = build_swagger(settings.model_dir.name or "mlflow-model", model.signature,
                                model.input_example)
        logger.info("model loaded (loader %s); %d worker thread(s) for predict",
                    model.loader_module, settings.worker_count)
        score, batch = scorer(model)
        runner = Runner(score, settings.worker_count, settings.scoring_timeout_s, batch)
        batcher: Batcher[BatchItem] | None = None
        if settings.batching is not None:
            logger.info("batching: up to %d requests per predict, closed %g ms after the first",
                        settings.batching.max_batch_size, settings.batching.max_latency_s * 1000)
            batcher = Batcher(settings.batching, runner.submit_batch)
        run_until_stopped(MlflowModelApp(runner, swagger, batcher), sock, HTTP_PROTOCOL,
                          settings.access_log, settings.log_level, logger)
        runner.close()
        return runner.busy
    finally:
        sock.close()
        sys.stdout.flush()

