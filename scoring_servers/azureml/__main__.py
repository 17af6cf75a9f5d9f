"""`python -m scoring_servers.azureml`: the only place errors become exit codes.

Exit codes:
- 0: stopped by SIGTERM or SIGINT after finishing the requests in flight;
- 2: bad arguments or environment variables (retrying will not help);
- 3: the entry script failed: it did not import, lacks init() or run(), or init() raised. Its
  traceback is on stderr; a supervisor treats this as "init failed" and backs off.
"""

from __future__ import annotations

import os
import sys
import traceback

from scoring_servers.azureml.errors import ScoringServerError, ScriptError
from scoring_servers.azureml.server import serve
from scoring_servers.azureml.settings import parse_settings


def main() -> int:
    try:
        stuck = serve(parse_settings(sys.argv[1:], os.environ))
    except ScoringServerError as exc:
        if isinstance(exc, ScriptError):
            # the three-argument form: the one-argument one is 3.10+ (environments go to 3.8)
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        print(f"scoring server: {exc.message}", file=sys.stderr, flush=True)
        return exc.exit_code
    if stuck:
        # The run() threads are daemons, but interpreter finalisation while one still runs the
        # script's code can hang or crash in C extensions: leave without it.
        print(f"scoring server: {stuck} run() call(s) still running; exiting without them",
              file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
