"""`python -m scoring_servers.mlflow`: the only place errors become exit codes.

Exit codes (as for `python -m scoring_servers.azureml`):
- 0: stopped by SIGTERM or SIGINT after finishing the requests in flight;
- 2: bad arguments or environment variables, or no MLflow model where they point;
- 3: the model could not be loaded (a missing flavour package: the message names it and the
  model's requirements file), or mlflow-skinny/pandas are not installed in this environment.
  A supervisor treats this as "init failed" and backs off.
"""

from __future__ import annotations

import os
import sys
import traceback

from scoring_servers.mlflow.errors import EXIT_MODEL_FAILED, ScoringServerError
from scoring_servers.mlflow.settings import parse_settings


def main() -> int:
    try:
        settings = parse_settings(sys.argv[1:], os.environ)
    except ScoringServerError as exc:
        return _fail(exc)
    try:
        from scoring_servers.mlflow.server import serve
    except ModuleNotFoundError as exc:  # the deployment's environment lacks our own needs
        print(f"scoring server: the Python package {exc.name!r} is not installed; the MLflow "
              "scoring server needs mlflow-skinny, pandas, uvicorn, uvloop and httptools "
              "(pip install 'scoregate[mlflow]')", file=sys.stderr, flush=True)
        return EXIT_MODEL_FAILED
    try:
        stuck = serve(settings)
    except ScoringServerError as exc:
        return _fail(exc)
    if stuck:
        # The predict threads are daemons, but interpreter finalisation while one still runs
        # the model's code can hang or crash in C extensions: leave without it.
        print(f"scoring server: {stuck} prediction(s) still running; exiting without them",
              file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(0)
    return 0


def _fail(exc: ScoringServerError) -> int:
    """One clear line last; the traceback before it only when the cause is not already named."""
    cause = exc.__cause__
    if cause is not None and not isinstance(cause, ModuleNotFoundError):
        traceback.print_exception(type(cause), cause, cause.__traceback__, file=sys.stderr)
    print(f"scoring server: {exc.message}", file=sys.stderr, flush=True)
    return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
