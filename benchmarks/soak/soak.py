"""Soak: a fixed request rate for minutes, traffic weights changed every few seconds, a managed
instance SIGKILLed every 30 s; every failure explained, p99 per window, gateway RSS and fds.

    python benchmarks/soak/soak.py                      # 5 minutes at 100 requests/s
    python benchmarks/soak/soak.py --seconds 60 --rate 50

Real `scoregate serve` on loopback with two managed deployments (the trivial scoring script,
two instances each). Requests are sent open-loop (at their scheduled time, whether or not
earlier ones have answered), so a stall shows as latency, not as a lower rate. Results are
printed and written to benchmarks/results/soak-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.common.children import Children  # noqa: E402
from benchmarks.common.proc_stats import rss_bytes  # noqa: E402
from benchmarks.common.serve import Serve, start_serve  # noqa: E402

ENDPOINT = "soak"
DEPLOYMENTS = ("blue", "green")
WINDOW_S = 30.0


@dataclass(frozen=True)
class Sent:
    at: float  # seconds since the start
    status: int  # 0: no HTTP answer
    seconds: float
    why: str


def write_config(folder: Path, timeout_ms: int) -> None:
    code = REPO / "benchmarks" / "scoring_server" / "trivial"
    folder.mkdir(parents=True)
    (folder / "endpoint.yml").write_text(f"name: {ENDPOINT}\nauth_mode: key\n"
                                         "traffic: {blue: 50, green: 50}\n")
    for name in DEPLOYMENTS:
        (folder / f"{name}.yml").write_text(
            f"name: {name}\nendpoint_name: {ENDPOINT}\n"
            f"code_configuration: {{code: {code}, scoring_script: score.py}}\n"
            "instance_count: 2\n"
            f"request_settings: {{request_timeout_ms: {timeout_ms}, "
            "max_concurrent_requests_per_instance: 16}\n"
            "readiness_probe: {initial_delay: 0, period: 1, timeout: 1, failure_threshold: 2}\n"
            "liveness_probe: {initial_delay: 5, period: 2, timeout: 2, failure_threshold: 5}\n")


def fd_count(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


async def load(url: str, key: str, rate: float, seconds: float, out: list[Sent]) -> None:
    """Open-loop: request i leaves at i / rate seconds, whatever happened to the others."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def one(session: aiohttp.ClientSession, at: float) -> None:
        began = loop.time()
        try:
            async with session.post(url, data=b'{"data": [[1, 2, 3]]}', headers=headers) as reply:
                body = await reply.read()
                why = "" if reply.status == 200 else body.decode(errors="replace")[:200]
                out.append(Sent(at, reply.status, loop.time() - began, why))
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            out.append(Sent(at, 0, loop.time() - began, f"{type(error).__name__}: {error}"))

    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        tasks = []
        index = 0
        while (at := index / rate) < seconds:
            delay = start + at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, at)))
            index += 1
        await asyncio.gather(*tasks)


async def chaos(gateway: Serve, seconds: float, weight_every: float,
                kill_every: float, events: list[str], samples: list[dict[str, float]]) -> None:
    """Weight changes, instance kills and /proc samples on their own schedules."""
    admin = gateway.admin_url
    token = (gateway.home / "admin_token").read_text().strip()
    rng = random.Random(1)
    start = time.monotonic()
    next_weight, next_kill, next_sample = weight_every, kill_every, 0.0
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"},
                                 timeout=60) as client:
        while (now := time.monotonic() - start) < seconds:
            if now >= next_sample:
                pid = gateway.child.pid
                samples.append({"t": round(now, 1), "rss_mb": rss_bytes(pid) / 2**20,
                                "fds": fd_count(pid)})
                next_sample += 5
            if now >= next_weight:
                blue = rng.choice(range(0, 101, 10))
                reply = await client.put(f"{admin}/v1/endpoints/{ENDPOINT}/traffic",
                                         json={"blue": blue, "green": 100 - blue})
                events.append(f"{now:6.1f}s traffic blue={blue} green={100 - blue}: "
                              f"{reply.status_code}")
                next_weight += weight_every
            if now >= next_kill:
                events.append(f"{now:6.1f}s " + await _kill_one(client, admin, rng))
                next_kill += kill_every
            await asyncio.sleep(0.1)


async def _kill_one(client: httpx.AsyncClient, admin: str, rng: random.Random) -> str:
    import os
    import signal

    name = rng.choice(DEPLOYMENTS)
    shown = (await client.get(f"{admin}/v1/endpoints/{ENDPOINT}/deployments/{name}")).json()
    running = [i for i in shown["instances"] if i.get("pid")]
    if not running:
        return f"no running instance of {name} to kill"
    victim = rng.choice(running)
    os.kill(victim["pid"], signal.SIGKILL)
    return f"SIGKILL {victim['id']} (pid {victim['pid']})"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def report(sent: list[Sent], events: list[str], samples: list[dict[str, float]],
           seconds: float) -> dict[str, object]:
    failed = [s for s in sent if s.status != 200]
    reasons = Counter(f"{s.status} {s.why[:120]}" for s in failed)
    windows = []
    for start in range(0, int(seconds), int(WINDOW_S)):
        inside = [s.seconds for s in sent if start <= s.at < start + WINDOW_S]
        windows.append({"from_s": start, "requests": len(inside),
                        "p50_ms": round(percentile(inside, 0.50) * 1000, 1),
                        "p99_ms": round(percentile(inside, 0.99) * 1000, 1),
                        "max_ms": round(max(inside, default=0) * 1000, 1)})
    return {"sent": len(sent), "failed": len(failed), "failures": dict(reasons),
            "failed_at_s": [round(s.at, 2) for s in failed], "windows": windows,
            "samples": samples, "events": events}


def print_report(result: dict[str, object]) -> None:
    print(f"requests sent: {result['sent']}, failed: {result['failed']}")
    for reason, count in result["failures"].items():  # type: ignore[attr-defined]
        print(f"  {count:5d} x {reason}")
    print("window   requests  p50 ms  p99 ms  max ms")
    for w in result["windows"]:  # type: ignore[attr-defined]
        print(f"{w['from_s']:5d}s  {w['requests']:8d} {w['p50_ms']:7.1f} {w['p99_ms']:7.1f} "
              f"{w['max_ms']:7.1f}")
    print("t s     gateway RSS MB  open fds")
    for s in result["samples"]:  # type: ignore[attr-defined]
        print(f"{s['t']:6.1f}  {s['rss_mb']:14.1f}  {s['fds']:8d}")
    print("events:")
    for event in result["events"]:  # type: ignore[attr-defined]
        print("  " + event)


async def run(gateway: Serve, args: argparse.Namespace) -> dict[str, object]:
    sent: list[Sent] = []
    events: list[str] = []
    samples: list[dict[str, float]] = []
    url = f"{gateway.scoring_url}/endpoints/{ENDPOINT}/score"
    await asyncio.gather(
        load(url, gateway.key(ENDPOINT), args.rate, args.seconds, sent),
        chaos(gateway, args.seconds, args.weight_every, args.kill_every, events, samples))
    return report(sent, events, samples, args.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--weight-every", type=float, default=3.0)
    parser.add_argument("--kill-every", type=float, default=30.0)
    parser.add_argument("--timeout-ms", type=int, default=5000, help="request_timeout_ms")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scoregate-soak-") as tmp, \
            Children(Path(tmp) / "logs") as children:
        folder = Path(tmp) / "config"
        write_config(folder, args.timeout_ms)
        gateway = start_serve(children, Path(tmp) / "home", str(folder),
                              flags=("--no-access-log",))
        result = asyncio.run(run(gateway, args))
        result["settings"] = vars(args)
    print_report(result)
    out = REPO / "benchmarks" / "results" / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
