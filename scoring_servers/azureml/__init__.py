"""Runs Azure ML scoring scripts (`init()` / `run(raw_data)`) unchanged, as a separate process.

Start it with `python -m scoring_servers.azureml --code DIR --entry score.py (--fd N | --port P)`;
see `__main__.py` for the exit codes and `settings.py` for the environment variables it reads.
It speaks HTTP only and imports nothing else from scoregate.
"""
