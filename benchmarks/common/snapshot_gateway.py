"""`ScoringApp` alone on a JSON routing snapshot, under the uvicorn settings `scoregate serve`
uses: the data plane without the control plane, for benchmarks that price the hot path.

    python benchmarks/common/snapshot_gateway.py snapshot.json --port-file F \\
        [--no-metrics] [--no-access-log] [--http serve|httptools]

The JSON format is gateway/standalone.py's (shared with the tests' runner, since benchmarks
import nothing from tests/). The server is configured by gateway's
`server_config` (as `serve` configures its listeners), so the benchmark prices what users run.
`--http httptools` swaps serve's hardened protocol (gateway/http/server_protocol.py) for uvicorn's
plain httptools one, to price the hardening.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gateway import ListenerLimits, server_config  # noqa: E402
from gateway.app import GatewayOptions  # noqa: E402
from gateway.standalone import app_from_file, run_on_loopback  # noqa: E402
from gateway.telemetry.access_log import configure_logging  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("snapshot")
    parser.add_argument("--port-file", required=True)
    for flag in ("--no-metrics", "--no-access-log"):
        parser.add_argument(flag, action="store_true")
    parser.add_argument("--http", choices=("serve", "httptools"), default="serve")
    args = parser.parse_args()
    configure_logging("json")
    app = app_from_file(Path(args.snapshot),
                        GatewayOptions(metrics=not args.no_metrics,
                                       access_log=not args.no_access_log))
    config = server_config(app, ListenerLimits(), "scoring")
    if args.http == "httptools":
        config.http = "httptools"
    run_on_loopback(config, Path(args.port_file))


if __name__ == "__main__":
    main()
