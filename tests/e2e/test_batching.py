"""Batching end to end: the YAML key reaches the instance, the gateway records each request's
batch size and wait per deployment and strips the headers; `show` shows it, `update` changes it."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.support.gateway import RunningGateway, metric, metrics_text, start_serve
from tests.support.processes import ProcessGroup, wait_until

E = "batch-endpoint"
SCRIPT = """\
import json

def init():
    pass

def run(raw_data):
    return [value * 2 for value in json.loads(raw_data)]

def run_batch(inputs):
    return [run(raw_data) for raw_data in inputs]
"""
REQUESTS = 48


def _config(folder: Path) -> Path:
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "score.py").write_text(SCRIPT)
    (folder / "endpoint.yml").write_text(f"name: {E}\nauth_mode: key\ntraffic: {{blue: 100}}\n")
    (folder / "blue.yml").write_text(
        f"name: blue\nendpoint_name: {E}\n"
        "code_configuration: {code: code, scoring_script: score.py}\n"
        "request_settings: {max_concurrent_requests_per_instance: 4}\n"
        "readiness_probe: {initial_delay: 0, period: 1, failure_threshold: 3}\n"
        "batching:\n  max_batch_size: 8\n  max_latency_ms: 20\n")
    return folder


def _show(gateway: RunningGateway) -> dict[str, object]:
    shown: dict[str, object] = gateway.cli_json("online-deployment", "show", "--name", "blue",
                                                "--endpoint-name", E)
    return shown


def _batch_counts(gateway: RunningGateway) -> tuple[float, float, float]:
    text = metrics_text(gateway.scoring_url)
    labels = {"endpoint": E, "deployment": "blue"}
    return (metric(text, "scoregate_batch_size_count", **labels),
            metric(text, "scoregate_batch_size_sum", **labels),
            metric(text, "scoregate_batch_wait_seconds_count", **labels))


def test_batching_from_yaml_to_metrics_and_back_off(processes: ProcessGroup,
                                                     tmp_path: Path) -> None:
    gateway = start_serve(processes, tmp_path / "home", str(_config(tmp_path / "config")))
    key = gateway.key(E)
    assert _show(gateway)["batching"] == {"max_batch_size": 8, "max_latency_ms": 20}
    wait_until(lambda: gateway.score(E, b"[1]", key).status_code == 200, timeout=60,
               what="blue to answer")
    before = _batch_counts(gateway)

    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(
            lambda index: gateway.score(E, json.dumps([index, 0.5]).encode(), key,
                                        client=client), range(REQUESTS)))
    assert [reply.status_code for reply in replies] == [200] * REQUESTS
    assert [reply.json() for reply in replies] == [[index * 2, 1.0] for index in range(REQUESTS)]
    assert not any(name.startswith("x-scoregate-batch") for reply in replies
                   for name in reply.headers)
    count, size_sum, waits = (after - start for after, start in
                              zip(_batch_counts(gateway), before, strict=True))
    assert count == waits == REQUESTS  # one observation per request
    assert size_sum > count  # 8 clients in flight: some requests shared a batch

    gateway.cli("online-deployment", "update", "--name", "blue", "--endpoint-name", E,
                "--set", "batching=null")
    assert _show(gateway)["batching"] is None
    wait_until(lambda: gateway.score(E, b"[1]", key).status_code == 200, timeout=60,
               what="blue to answer again")
    off = _batch_counts(gateway)
    for _ in range(5):
        assert gateway.score(E, b"[2]", key).json() == [4]
    assert _batch_counts(gateway) == off  # the restarted instance no longer batches
