"""The gateway benchmark: scoregate vs nginx vs the backend directly, under wrk (issue 2 §7).

    python benchmarks/gateway/run.py [--quick] [--mirror-only [--mirror-rate R]] [--runs N]

Prints tables of medians and ratios and writes benchmarks/results/gateway-<timestamp>.json.
Every process it starts (backends, nginx, scoregate, wrk) is stopped at the end, on failure,
on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks.*` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common.children import Children, exit_on_signals  # noqa: E402
from benchmarks.common.serve import REPO_ROOT  # noqa: E402
from benchmarks.common.wrk import wrk_binary  # noqa: E402
from benchmarks.gateway import cases, report  # noqa: E402
from benchmarks.gateway.nginx import nginx_binary  # noqa: E402
from benchmarks.gateway.payloads import write_payloads  # noqa: E402
from benchmarks.gateway.scoregate import LAUNCHERS  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark scoregate against nginx and the backend directly, with wrk.")
    parser.add_argument("--quick", action="store_true",
                        help="1 s runs instead of 5 s (about 2 minutes instead of about 8)")
    parser.add_argument("--runs", type=int, default=3, help="runs per target and case (≥ 1)")
    parser.add_argument("--duration", type=int, default=None,
                        help="seconds per run (whole seconds; wrk's unit)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--skip-mirror", action="store_true", help="leave out the mirror case")
    parser.add_argument("--mirror-only", action="store_true",
                        help="only the mirror case, scoregate without and with the mirror (no "
                             "nginx); paced at half and a quarter of --mirror-rate × 2")
    parser.add_argument("--shadow-answer-kb", type=int, default=0,
                        help="the mirror case's shadow answers about this many KiB (default: "
                             "the 51-byte body of every backend)")
    parser.add_argument("--mirror-rate", type=float, default=None,
                        help="the mirror case's half-saturation rate in req/s (default: half "
                             "of the measured saturated throughput)")
    parser.add_argument("--launcher", choices=LAUNCHERS, default="serve",
                        help="how scoregate starts: `serve` (the real thing) or `runner` "
                             "(the data-plane test runner; development only)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON result")
    parser.add_argument("--keep-work", action="store_true",
                        help="keep the temp folder (configs, logs, access logs)")
    args = parser.parse_args(argv)
    for name in ("runs", "connections"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.skip_mirror and args.mirror_only:
        parser.error("--skip-mirror and --mirror-only exclude each other")
    if args.mirror_rate is not None and args.mirror_rate <= 0:
        parser.error(f"--mirror-rate must be above 0, got {args.mirror_rate}")
    if args.duration is not None and args.duration < 1:
        parser.error(f"--duration must be at least 1 second, got {args.duration}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_signals()
    wrk_binary(), nginx_binary()  # fail before starting anything if a tool is missing
    work = Path(tempfile.mkdtemp(prefix="scoregate-bench-"))
    duration = args.duration or (1 if args.quick else 5)
    settings = cases.Settings(work=work, payloads=write_payloads(work / "payloads"),
                              duration_s=duration, runs=args.runs,
                              connections=args.connections, launcher=args.launcher)
    started = time.strftime("%Y%m%d-%H%M%S")
    results = cases.Results()
    load_before = _loadavg()
    if load_before > (os.cpu_count() or 1) / 2:
        print(f"warning: load average {load_before:.1f} on {os.cpu_count()} CPUs before start: "
              "other work competes for the CPU, absolute figures will be low", flush=True)
    print(f"gateway benchmark: {args.runs} runs × {duration} s, {args.connections} connections, "
          f"scoregate via {args.launcher}; work folder {work}", flush=True)
    try:
        with Children(work / "logs") as children:
            if not args.mirror_only:
                cases.main_cases(children, settings, results)
            if not args.skip_mirror:
                cases.mirror_case(children, settings, results, args.mirror_rate,
                                  with_nginx=not args.mirror_only,
                                  shadow_answer_kb=args.shadow_answer_kb)
    except (KeyboardInterrupt, SystemExit) as stop:
        print("\ninterrupted: every process started was stopped", file=sys.stderr)
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
        return stop.code if isinstance(stop, SystemExit) and isinstance(stop.code, int) else 130
    except Exception as error:  # noqa: BLE001 - the CLI turns any failure into a message
        print(f"\nbenchmark failed: {error}\n(logs kept in {work / 'logs'})", file=sys.stderr)
        return 1
    summary = report.summarize(results.samples)
    compared = report.comparisons(summary)
    checks = report.targets_check(summary, results.notes)
    report.print_report(summary, compared, checks, results.notes)
    out = args.out / f"gateway-{started}.json"
    report.save(out, results.samples, summary, compared, checks,
                {"started": started, "command": " ".join([sys.executable, *sys.argv]),
                 "settings": {"runs": args.runs, "duration_s": duration,
                              "connections": args.connections, "launcher": args.launcher,
                              "mirror_only": args.mirror_only, "mirror_rate": args.mirror_rate,
                              "shadow_answer_kb": args.shadow_answer_kb,
                              "payload_bytes": {k: p.stat().st_size
                                                for k, p in settings.payloads.items()}},
                 "machine": {**_machine(), "loadavg_1min_before": load_before,
                             "loadavg_1min_after": _loadavg()},
                 "notes": results.notes})
    print(f"\nresults: {out}")
    if not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _machine() -> dict[str, object]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "nginx": _version([nginx_binary(), "-v"]),
            "wrk": _version([wrk_binary(), "-v"]), "git": _version(["git", "-C", str(REPO_ROOT),
                                                                   "rev-parse", "HEAD"])}


def _loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def _version(args: list[str]) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=10)
    except OSError as error:
        return f"unknown ({error})"
    text = (done.stdout + done.stderr).strip()
    return text.splitlines()[0] if text else ""


if __name__ == "__main__":
    raise SystemExit(main())
