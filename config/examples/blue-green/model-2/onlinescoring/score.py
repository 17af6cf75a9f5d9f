"""Scoring script of model 2, in the shape Azure ML's managed online endpoints run unchanged."""

import json
import logging
import os

import joblib
import numpy


def init():
    """Called once when the instance starts: load the model into memory."""
    global model
    # AZUREML_MODEL_DIR holds the deployment's model folder under its own name ("model").
    model_path = os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model/sklearn_regression_model.pkl")
    model = joblib.load(model_path)
    logging.info("Init complete")


def run(raw_data):
    """Called for every request with the body as text: {"data": [[10 numbers], ...]}."""
    logging.info("model 2: request received")
    data = numpy.array(json.loads(raw_data)["data"])
    result = model.predict(data)
    logging.info("Request processed")
    return result.tolist()
