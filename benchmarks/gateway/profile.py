"""Where scoregate's CPU goes: py-spy samples `scoregate serve` under saturation load.

    python benchmarks/gateway/profile.py [--seconds 10] [--payload 200B] [--mirror]

Needs py-spy (`pip install py-spy`; a profiling tool, not a dependency of scoregate). Prints
the functions with the most samples, by own time and by inclusive time, and keeps the
collapsed stacks (benchmarks/results/profile-<timestamp>.txt; flamegraph.pl and speedscope
read them).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks.*` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common.children import Children, exit_on_signals  # noqa: E402
from benchmarks.common.serve import REPO_ROOT  # noqa: E402
from benchmarks.common.wrk import Load, run_wrk  # noqa: E402
from benchmarks.gateway.backends import start_backends  # noqa: E402
from benchmarks.gateway.payloads import SIZES, write_payloads  # noqa: E402
from benchmarks.gateway.scoregate import ScoregateConfig, start_scoregate  # noqa: E402

Counts = list[tuple[str, int]]


def top_frames(collapsed: str, limit: int = 25) -> tuple[Counts, Counts, int]:
    """(own, inclusive, total) sample counts per frame from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return own.most_common(limit), inclusive.most_common(limit), total


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Profile scoregate serve under wrk load with py-spy.")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--payload", choices=tuple(SIZES), default="200B")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--mirror", action="store_true", help="with a 50%% mirror to a slow shadow")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        parser.error("py-spy is not installed: pip install py-spy")
    exit_on_signals()
    work = Path(tempfile.mkdtemp(prefix="scoregate-profile-"))
    out = REPO_ROOT / "benchmarks" / "results" / f"profile-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with Children(work / "logs") as children:
            backends = start_backends(children, 0.0, 100.0)
            config = ScoregateConfig(mirror_percent=50 if args.mirror else 0)
            target = start_scoregate(children, work / "scoregate", backends, config)
            body = write_payloads(work / "payloads")[args.payload]
            load = Load(body, {**target.headers}, args.connections, args.seconds + 4)
            pid = target.proxy.pids[0] if target.proxy else 0
            spy = children.start([py_spy, "record", "--pid", str(pid), "--format",
                                  "raw", "--rate", "250", "--duration", str(args.seconds),
                                  "--nonblocking", "--output", str(out)], name="py-spy")
            result = run_wrk(target.url, load, work / "wrk", children)
            spy.popen.wait(30)
    except (KeyboardInterrupt, SystemExit):
        print("interrupted: every process started was stopped", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrk: {result.throughput:.0f} req/s, p50 {result.p50_ms:.2f} ms, "
          f"p99 {result.p99_ms:.2f} ms")
    own, inclusive, total = top_frames(out.read_text())
    for title, rows in (("own time", own), ("inclusive time", inclusive)):
        print(f"\ntop frames by {title} ({total} samples)")
        for frame, count in rows:
            print(f"{100 * count / total:6.1f}%  {frame}")
    print(f"\ncollapsed stacks: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
