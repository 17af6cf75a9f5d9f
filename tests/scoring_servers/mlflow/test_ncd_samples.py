"""azureml-examples' no-code samples (cli/endpoints/online/ncd): each model folder, served as
is, answers its sample request with what `mlflow.pyfunc.load_model(path).predict` gives; the
scikit-learn one also with the numbers Azure's documentation shows for it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd  # type: ignore[import-untyped]
import pytest

from tests.scoring_servers.mlflow.conftest import start_mlflow_server
from tests.scoring_servers.mlflow.models import pyfunc_predict
from tests.support.processes import ProcessGroup

NCD = Path(__file__).resolve().parents[2] / "data" / "azureml-examples" / "cli" / "endpoints" \
    / "online" / "ncd"
SAMPLES = [("sklearn-diabetes/model", "sample-request-sklearn.json", None),
           ("lightgbm-iris/model", "sample-request-lightgbm.json", "lightgbm")]


@pytest.mark.parametrize(("model", "request_file", "framework"), SAMPLES,
                         ids=["sklearn-diabetes", "lightgbm-iris"])
def test_sample_request_gets_pyfuncs_predictions(processes: ProcessGroup, model: str,
                                                 request_file: str,
                                                 framework: str | None) -> None:
    if framework is not None:
        pytest.importorskip(framework)
    body = (NCD / request_file).read_text()
    frame = pd.DataFrame(**json.loads(body)["input_data"])
    expected = pyfunc_predict(NCD / model, frame).tolist()
    server = start_mlflow_server(processes, NCD / model)
    reply = server.score(body)
    assert reply.status == 200, reply.body
    assert reply.json() == expected
    if model.startswith("sklearn"):  # the answer how-to-deploy-mlflow-models-online-endpoints shows
        assert expected == pytest.approx([11633.100167144921, 8522.117402884991], rel=1e-12)
