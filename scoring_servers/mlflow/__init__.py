"""Serves an MLflow model without a scoring script, as Azure ML's no-code deployment does.

Start it with `python -m scoring_servers.mlflow --model_dir DIR (--fd N | --port P)`; see
`__main__.py` for the exit codes and `settings.py` for the environment variables it reads.
It runs inside a deployment's own Python environment, so it needs only the standard library,
mlflow-skinny, pandas and the HTTP layer the azureml server uses (uvicorn, uvloop, httptools).
It speaks HTTP only and imports nothing of scoregate but `scoring_servers`.
"""
