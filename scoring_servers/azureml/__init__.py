"""Runs Azure ML scoring scripts (`init()` / `run(...)`) unchanged, as a separate process: a
drop-in for Microsoft's azureml-inference-server-http (azmlinfsrv) 1.5.1.

Started by the control plane as `python -m scoring_servers.azureml --fd N --code DIR --entry
score.py`, or by hand with azmlinfsrv's flags (`--entry_script score.py --model_dir DIR
--port 5001`, also as the `scoregate-scoring-server` command). See docs/scoring-server.md for
the contract, `__main__.py` for the exit codes and `settings.py` for the environment variables.
It speaks HTTP only and imports nothing else from scoregate.
"""
