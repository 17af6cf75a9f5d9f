"""Run `ScoringApp` alone on a routing snapshot described in JSON (tests only; start it with
`tests.support.gateway.start_snapshot`).

    python -m tests.support.snapshot_gateway snapshot.json --port-file F [--no-metrics]
        [--no-access-log]

The JSON format is `gateway/standalone.py`'s. The bound port is written to --port-file once
the socket listens.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from gateway.app import GatewayOptions
from gateway.standalone import app_from_file, run_on_loopback
from gateway.telemetry.access_log import configure_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("snapshot")
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--no-metrics", action="store_true")
    parser.add_argument("--no-access-log", action="store_true")
    parser.add_argument("--log-format", default="json")
    args = parser.parse_args()
    configure_logging(args.log_format)
    app = app_from_file(Path(args.snapshot),
                        GatewayOptions(metrics=not args.no_metrics,
                                       access_log=not args.no_access_log))
    config = uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="on",
                            access_log=False, server_header=False, log_level="warning",
                            proxy_headers=False, backlog=2048)
    run_on_loopback(config, Path(args.port_file))


if __name__ == "__main__":
    main()
