"""One bounded wrk run and the figures we read from its report."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class WrkResult:
    requests: int
    requests_per_s: float
    non_2xx: int
    socket_errors: int


def run_wrk(url: str, body_file: Path, duration_s: int, connections: int) -> WrkResult:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--timeout", "5s",
            "-s", str(HERE / "post.lua"), url, "--", str(body_file)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 30,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
    return parse_report(done.stdout)


def parse_report(report: str) -> WrkResult:
    requests = re.search(r"(\d+) requests in", report)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", report)
    if requests is None or rate is None:
        raise RuntimeError(f"cannot read wrk's report:\n{report}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", report)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", report)
    return WrkResult(
        requests=int(requests.group(1)),
        requests_per_s=float(rate.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )
