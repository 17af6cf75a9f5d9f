"""An MLflow "model from code" that answers 0.0 per row: the `constant` case of run.py, which
measures the servers (HTTP, parsing, MLflow's enforcement) without a framework's predict."""

import mlflow
from mlflow.pyfunc.model import PythonModel


class ConstantModel(PythonModel):
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        return [0.0] * len(model_input)


mlflow.models.set_model(ConstantModel())
