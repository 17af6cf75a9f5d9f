"""Shadow comparison through a real gateway process, with model stand-ins over real HTTP.

The module also runs the processes it needs (so they stay next to the tests that use them):

    python -m tests.gateway.test_shadow model --port-file F [--scale X] [--status N] [--text]
    python -m tests.gateway.test_shadow gateway SNAPSHOT.json COMPARE.json --port-file F

`model` answers `{"predictions": [x * scale for x in data]}` for `{"data": [...]}`; `gateway`
runs `ScoringApp` with the given comparison settings and adds `GET /test/compare/{e}/{d}`
(the `ScoringApp.comparisons` report, as the admin API renders it) for the tests to read.
The rules and the pairing alone: test_shadow_rules.py, test_shadow_pairing.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import statistics
import sys
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway import CompareSettings
from tests.gateway.harness import Reply, _port, auth, deployment, endpoint, metric, metrics_text
from tests.support.processes import ProcessGroup, http_ok, wait_until

# --- processes ---------------------------------------------------------------------------------

def start_model(processes: ProcessGroup, tmp: Path, name: str, *flags: str) -> str:
    port_file = tmp / f"model-{name}-{len(processes.started)}.port"
    started = processes.python("-m", "tests.gateway.test_shadow", "model", "--port-file",
                               str(port_file), *flags, name=f"model-{name}")
    url = f"http://127.0.0.1:{_port(port_file, started, 'model ' + name)}"
    wait_until(lambda: http_ok(url + "/"), timeout=30, what=f"model {name}")
    return url


def start_compare_gateway(processes: ProcessGroup, tmp: Path, endpoints: list[dict[str, Any]],
                          compare: CompareSettings,
                          settings: Mapping[str, Any] | None = None) -> str:
    index = len(processes.started)
    snapshot, options = tmp / f"snapshot-{index}.json", tmp / f"compare-{index}.json"
    snapshot.write_text(json.dumps({"version": 1, "settings": dict(settings or {}),
                                    "endpoints": endpoints}))
    options.write_text(json.dumps(asdict(compare)))
    port_file = tmp / f"gateway-{index}.port"
    started = processes.python("-m", "tests.gateway.test_shadow", "gateway", str(snapshot),
                               str(options), "--port-file", str(port_file), name="gateway")
    url = f"http://127.0.0.1:{_port(port_file, started, 'gateway')}"
    wait_until(lambda: http_ok(url + "/healthz"), timeout=30, what="gateway /healthz")
    return url


def report(url: str, endpoint_name: str, deployment_name: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/test/compare/{endpoint_name}/{deployment_name}",
                                timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def settled(url: str, endpoint_name: str, deployment_name: str) -> dict[str, Any]:
    """The report once every copy sent was judged (copies sent = completed + failed)."""
    def done() -> bool:
        text = metrics_text(url)
        labels = {"endpoint": endpoint_name, "deployment": deployment_name}
        sent = metric(text, "scoregate_mirror_copies_total", outcome="sent", **labels)
        finished = sum(metric(text, "scoregate_mirror_copies_total", outcome=o, **labels)
                       for o in ("completed", "failed"))
        judged = report(url, endpoint_name, deployment_name)
        return sent == finished and sum(judged["counts"].values()) + judged["skipped"] == sent
    wait_until(done, timeout=30, what=f"comparisons of {endpoint_name}/{deployment_name}")
    return report(url, endpoint_name, deployment_name)


def bodies(count: int, seed: int, size: int = 5) -> list[bytes]:
    rng = random.Random(seed)
    return [json.dumps({"data": [round(rng.uniform(1, 1000), 6) for _ in range(size)]}).encode()
            for _ in range(count)]


async def _send_each(url: str, payloads: list[bytes]) -> list[Reply]:
    replies: list[Reply] = []
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        for payload in payloads:
            started = loop.time()
            async with session.post(url, data=payload, headers=auth()) as response:
                body = await response.read()
                replies.append(Reply(response.status, response.headers.copy(), body,
                                     loop.time() - started))
    return replies


def send_each(url: str, path: str, payloads: list[bytes]) -> list[Reply]:
    """One request after another on one connection; every answer must be a 200."""
    replies = asyncio.run(_send_each(url + path, payloads))
    assert {r.status for r in replies} == {200}, [r.body for r in replies if r.status != 200]
    return replies


# --- one gateway, one endpoint per kind of shadow ---------------------------------------------

TOLERANCE = 1e-3
KEEP = 5
STORED = 64


@pytest.fixture(scope="module")
def gateway(module_processes: tuple[ProcessGroup, Path]) -> str:
    processes, tmp = module_processes
    live = start_model(processes, tmp, "live")
    same = start_model(processes, tmp, "same")
    drift = start_model(processes, tmp, "drift", "--scale", "1.01")
    broken = start_model(processes, tmp, "broken", "--status", "500")
    text_live = start_model(processes, tmp, "text-live", "--text")
    text_shadow = start_model(processes, tmp, "text-shadow", "--text")

    def pair(name: str, live_url: str, shadow_url: str, percent: int) -> dict[str, Any]:
        return endpoint(name, [deployment("blue", live_url), deployment("green", shadow_url)],
                        {"blue": 100}, {"green": percent})

    endpoints = [pair("same", live, same, 50), pair("drift", live, drift, 100),
                 pair("broken", live, broken, 100), pair("text", text_live, text_shadow, 100)]
    compare = CompareSettings(rel_tolerance=TOLERANCE, keep_mismatches=KEEP,
                              stored_body_bytes=STORED)
    return start_compare_gateway(processes, tmp, endpoints, compare)


def test_identical_shadow_all_match(gateway: str) -> None:
    send_each(gateway, "/endpoints/same/score", bodies(60, seed=1))
    result = settled(gateway, "same", "green")
    matched = result["counts"]["match"]
    assert 5 < matched < 55, result  # 50% mirrored: about 30
    assert result["counts"] == {"match": matched, "mismatch": 0, "shadow_error": 0,
                                "incomparable": 0}
    assert result["agreement_rate"] == 1.0 and result["last_mismatches"] == []
    text = metrics_text(gateway)
    labels = {"endpoint": "same", "deployment": "green"}
    assert metric(text, "scoregate_mirror_comparisons_total", outcome="match", **labels) == matched
    assert metric(text, "scoregate_mirror_copies_total", outcome="sent", **labels) == matched
    assert metric(text, "scoregate_mirror_compare_bytes", endpoint="same") == 0


def test_drifting_shadow_mismatches_exactly_and_store_stays_bounded(gateway: str) -> None:
    replies = send_each(gateway, "/endpoints/drift/score", bodies(80, seed=2))
    result = settled(gateway, "drift", "green")
    text = metrics_text(gateway)
    labels = {"endpoint": "drift", "deployment": "green"}
    copies = metric(text, "scoregate_mirror_copies_total", outcome="sent", **labels)
    assert copies == len(replies) == 80  # far more than the store keeps
    assert result["counts"] == {"match": 0, "mismatch": copies, "shadow_error": 0,
                                "incomparable": 0}
    assert metric(text, "scoregate_mirror_comparisons_total", outcome="mismatch",
                  **labels) == copies
    assert result["agreement_rate"] == 0.0
    # Every relative difference is 0.01 / 1.01: above the 0.005 bucket, within the 0.01 one.
    histogram = "scoregate_mirror_relative_difference_bucket"
    assert metric(text, histogram, le="0.005", **labels) == 0
    assert metric(text, histogram, le="0.01", **labels) == copies
    total = metric(text, "scoregate_mirror_relative_difference_sum", **labels)
    assert total / copies == pytest.approx(0.01 / 1.01, rel=1e-6)

    kept = result["last_mismatches"]
    assert len(kept) == KEEP  # bounded: only the last N of many
    ids = [r.headers["x-request-id"] for r in replies]  # sent one after another
    assert [pair["request_id"] for pair in kept] == ids[::-1][:KEEP]  # the newest, newest first
    for pair in kept:
        assert pair["live"]["status"] == pair["shadow"]["status"] == 200
        assert 0 < len(pair["live"]["body"]) <= STORED and 0 < len(pair["shadow"]["body"]) <= STORED
        assert "relative difference" in pair["reason"]
    held = sum(len(p["live"]["body"]) + len(p["shadow"]["body"]) for p in kept)
    assert result["memory_bytes"] == held <= KEEP * 2 * STORED
    assert metric(text, "scoregate_mirror_compare_bytes", endpoint="drift") == held


def test_failing_shadow_is_a_shadow_error(gateway: str) -> None:
    send_each(gateway, "/endpoints/broken/score", bodies(20, seed=3))
    result = settled(gateway, "broken", "green")
    assert result["counts"] == {"match": 0, "mismatch": 0, "shadow_error": 20, "incomparable": 0}
    assert result["agreement_rate"] == 0.0 and result["last_mismatches"] == []


def test_non_json_answers_are_incomparable(gateway: str) -> None:
    send_each(gateway, "/endpoints/text/score", bodies(15, seed=4))
    result = settled(gateway, "text", "green")
    assert result["counts"] == {"match": 0, "mismatch": 0, "shadow_error": 0, "incomparable": 15}
    assert result["agreement_rate"] is None
    text = metrics_text(gateway)
    assert metric(text, "scoregate_mirror_comparisons_total", endpoint="text",
                  outcome="incomparable") == 15


# --- latency: comparison on vs off, in the same test ------------------------------------------

ROUNDS, PER_ROUND = 4, 50


def medians(url_a: str, url_b: str, payloads: list[bytes],
            rounds: int = ROUNDS) -> tuple[float, float]:
    """Median client latency of two gateways, interleaved so machine noise hits both alike."""
    a: list[float] = []
    b: list[float] = []
    for round_index in range(rounds):
        chunk = payloads[round_index::rounds]
        for url, seen in ((url_a, a), (url_b, b)):
            seen += [reply.seconds for reply in send_each(url, "/score", chunk)]
    return statistics.median(a), statistics.median(b)


def test_comparison_never_delays_the_live_answer(module_processes: tuple[ProcessGroup, Path],
                                                 ) -> None:
    processes, tmp = module_processes
    live = start_model(processes, tmp, "lat-live")
    shadow = start_model(processes, tmp, "lat-shadow", "--scale", "1.01")
    routes = [endpoint("lat", [deployment("blue", live), deployment("green", shadow)],
                       {"blue": 100}, {"green": 100})]
    on = start_compare_gateway(processes, tmp, routes, CompareSettings(rel_tolerance=TOLERANCE))
    off = start_compare_gateway(processes, tmp, routes, CompareSettings(sample_percent=0))
    payloads = bodies(ROUNDS * PER_ROUND, seed=5, size=2000)  # ~30 KB answers to compare
    medians(on, off, payloads[:40], rounds=1)  # warm both up
    with_compare, without = medians(on, off, payloads)
    print(f"median latency with comparison {with_compare * 1000:.2f} ms, "
          f"without {without * 1000:.2f} ms")
    assert with_compare <= 1.5 * without + 0.003, (with_compare, without)
    judged = settled(on, "lat", "green")["counts"]
    assert judged["mismatch"] == ROUNDS * PER_ROUND + 40  # it really compared every copy
    assert sum(report(off, "lat", "green")["counts"].values()) == 0


def test_no_slowdown_without_mirror(module_processes: tuple[ProcessGroup, Path]) -> None:
    processes, tmp = module_processes
    live = start_model(processes, tmp, "plain")
    routes = [endpoint("plain", [deployment("blue", live)], {"blue": 100})]
    on = start_compare_gateway(processes, tmp, routes, CompareSettings())
    off = start_compare_gateway(processes, tmp, routes, CompareSettings(sample_percent=0))
    payloads = bodies(ROUNDS * PER_ROUND, seed=6)
    medians(on, off, payloads[:40], rounds=1)
    with_compare, without = medians(on, off, payloads)
    print(f"median latency, no mirror: comparison on {with_compare * 1000:.2f} ms, "
          f"off {without * 1000:.2f} ms")
    assert with_compare <= 1.5 * without + 0.002, (with_compare, without)
    assert metric(metrics_text(on), "scoregate_mirror_comparisons_total") == 0


# --- the processes themselves -------------------------------------------------------------------

def _model_app(scale: float, status: int, text: bool) -> Any:
    from aiohttp import web

    async def score(request: web.Request) -> web.Response:
        data = json.loads(await request.read())["data"]
        if text:
            return web.Response(status=status, text=f"{len(data)} rows scored")
        body = json.dumps({"predictions": [x * scale for x in data]})
        return web.Response(status=status, text=body, content_type="application/json")

    async def healthy(request: web.Request) -> web.Response:
        return web.Response(text="Healthy")

    app = web.Application()
    app.router.add_post("/score", score)
    app.router.add_get("/", healthy)
    return app


async def _serve_model(args: argparse.Namespace) -> None:
    from aiohttp import web

    sock = _listening()
    runner = web.AppRunner(_model_app(args.scale, args.status, args.text), access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    Path(args.port_file).write_text(str(sock.getsockname()[1]))
    await asyncio.Event().wait()


def _serve_gateway(args: argparse.Namespace) -> None:
    import orjson
    import uvicorn

    from control_plane.admin.comparison import comparison_json
    from gateway import GatewayOptions, configure_logging
    from gateway.standalone import app_from_file, run_on_loopback

    configure_logging("json")
    compare = CompareSettings(**json.loads(Path(args.compare).read_text()))
    app = app_from_file(Path(args.snapshot), GatewayOptions(access_log=False, compare=compare))

    async def with_reports(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/test/compare/"):
            return await app(scope, receive, send)
        endpoint_name, _, deployment_name = path.removeprefix("/test/compare/").partition("/")
        body = orjson.dumps(comparison_json(app.comparisons(endpoint_name, deployment_name)))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    config = uvicorn.Config(with_reports, loop="uvloop", http="httptools", lifespan="on",
                            access_log=False, log_level="warning")
    run_on_loopback(config, Path(args.port_file))


def _listening() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


def _main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    kinds = parser.add_subparsers(dest="kind", required=True)
    model = kinds.add_parser("model")
    model.add_argument("--port-file", required=True)
    model.add_argument("--scale", type=float, default=1.0)
    model.add_argument("--status", type=int, default=200)
    model.add_argument("--text", action="store_true")
    gateway_parser = kinds.add_parser("gateway")
    gateway_parser.add_argument("snapshot")
    gateway_parser.add_argument("compare")
    gateway_parser.add_argument("--port-file", required=True)
    args = parser.parse_args(argv)
    if args.kind == "model":
        import uvloop
        uvloop.run(_serve_model(args))
    else:
        _serve_gateway(args)


if __name__ == "__main__":
    _main(sys.argv[1:])
