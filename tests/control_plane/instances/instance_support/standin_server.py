"""A stand-in for `python -m scoring_servers.azureml`: same flags, behaviour steered by env.

STANDIN_STARTS_FILE  append "<pid>\n" at every start (to count starts)
STANDIN_EXIT_CODE    exit with this code at start, as the real server does when init() fails
STANDIN_FAIL_FILE    while this file exists, `GET /` answers 503 (readiness/liveness fail)
STANDIN_HANG_FILE    while this file exists, `GET /` never answers
STANDIN_CHECK_PATH   a path relative to AZUREML_MODEL_DIR; the start line says if it exists
STANDIN_IGNORE_TERM  "1": ignore SIGTERM, so only the supervisor's SIGKILL after its grace ends it
"""

from __future__ import annotations

import argparse
import http.server
import os
import signal
import socket
import sys
import time


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        hang = os.environ.get("STANDIN_HANG_FILE")
        while hang and os.path.exists(hang):
            time.sleep(0.1)
        fail = os.environ.get("STANDIN_FAIL_FILE")
        status, body = (503, b"Unhealthy") if fail and os.path.exists(fail) else (200, b"Healthy")
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        print(f"request {format % args}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--code")
    parser.add_argument("--entry")
    args = parser.parse_args()
    if os.environ.get("STANDIN_IGNORE_TERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    starts = os.environ.get("STANDIN_STARTS_FILE")
    if starts:
        with open(starts, "a") as file:
            file.write(f"{os.getpid()}\n")
    model_dir = os.environ.get("AZUREML_MODEL_DIR", "")
    check = os.environ.get("STANDIN_CHECK_PATH", "-")
    print(f"standin start pid={os.getpid()} code={args.code} entry={args.entry} "
          f"entry_env={os.environ.get('AZUREML_ENTRY_SCRIPT')} "
          f"workers={os.environ.get('WORKER_COUNT')} model_dir={model_dir} "
          f"model_files={sorted(os.listdir(model_dir)) if model_dir else []} "
          f"greeting={os.environ.get('GREETING')} "
          f"check={os.path.exists(os.path.join(model_dir, check))}", flush=True)
    code = os.environ.get("STANDIN_EXIT_CODE")
    if code:
        print("Traceback (most recent call last):\nRuntimeError: init() failed on purpose",
              file=sys.stderr, flush=True)
        return int(code)
    sock = socket.socket(fileno=args.fd)
    server = http.server.ThreadingHTTPServer(("localhost", 0), Handler,  # not bound: adopts sock
                                             bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.daemon_threads = True
    server.serve_forever(poll_interval=0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
