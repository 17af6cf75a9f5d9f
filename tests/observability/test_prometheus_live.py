"""Issue 4 §4: a real Prometheus scrapes a real gateway under a small load with a mirror set.

Everything is read back through Prometheus's HTTP API: every PromQL expression of the shipped
dashboard returns data for the right endpoint and deployment, the request counts match what
the test sent, random routing headers create no series, and no secret reaches a log line.
The stack is started once per module (a module-scoped process group stops it afterwards).
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import string
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.observability.dashboard import Query, load_dashboard, queries
from tests.observability.prometheus import Prometheus, prometheus_binary, start_prometheus
from tests.support.gateway import RunningGateway, start_serve
from tests.support.processes import ProcessGroup, wait_until

pytestmark = pytest.mark.skipif(prometheus_binary() is None,
                                reason="prometheus not on PATH (Debian package: prometheus)")

ENDPOINT = "obs-endpoint"
LIVE, SHADOW = "blue", "green"
MIRROR_PERCENT = 50
N_LIVE, N_DIRECT_SHADOW, N_DIRECT_LIVE, N_UNAUTHORIZED = 300, 60, 20, 15
N_RANDOM_WARMUP, N_RANDOM = 5, 100
FAIL_EVERY = 10  # every 10th scored request asks the script to raise → 424
SCORE_PY = '''import json, os

def init():
    pass

def run(raw_data):
    data = json.loads(raw_data)
    if data.get("fail"):
        raise RuntimeError("asked to fail")
    return {"deployment": os.environ["OBS_DEPLOYMENT"], "echo": data.get("data")}
'''


def start_scoregate(group: ProcessGroup, home: Path, folder: Path) -> RunningGateway:
    """The one place the gateway under test is started."""
    return start_serve(group, home, str(folder))


Series = set[frozenset[tuple[str, str]]]
# Every scoregate series but those the supervisor may add at any time on its own.
SCOREGATE_SERIES = ('{__name__=~"scoregate_.+", '
                    '__name__!~"scoregate_(probe_failures|instance_restarts)_total"}')


@dataclass(frozen=True)
class Stack:
    gateway: RunningGateway
    prometheus: Prometheus
    sent: Counter[str]  # by kind: live, live-fail, direct:<name>[-fail], unauthorized, random
    random_values: tuple[str, ...]
    series_after_warmup: Series
    series_after_random: Series
    secrets: tuple[str, ...]
    rate_interval: str


def _write_config(folder: Path, marker: str) -> None:
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "score.py").write_text(SCORE_PY)
    (folder / "endpoint.yml").write_text(
        f"name: {ENDPOINT}\nauth_mode: key\ntraffic: {{{LIVE}: 100, {SHADOW}: 0}}\n"
        f"mirror_traffic: {{{SHADOW}: {MIRROR_PERCENT}}}\n")
    for name in (LIVE, SHADOW):
        (folder / f"{name}.yml").write_text(
            f"name: {name}\nendpoint_name: {ENDPOINT}\n"
            "code_configuration: {code: code, scoring_script: score.py}\n"
            f"environment_variables: {{OBS_DEPLOYMENT: {marker}-{name}}}\n"
            "instance_count: 1\n"
            "request_settings: {request_timeout_ms: 5000,"
            " max_concurrent_requests_per_instance: 4}\n"
            "readiness_probe: {initial_delay: 0, period: 1}\n"
            "liveness_probe: {initial_delay: 0, period: 1}\n")


def _credentials(gateway: RunningGateway) -> dict[str, str]:
    """The endpoint's keys, from the admin API (as `get-credentials` gets them)."""
    token = (gateway.home / "admin_token").read_text().strip()
    response = httpx.post(f"{gateway.admin_url}/v1/endpoints/{ENDPOINT}/get-credentials",
                          headers={"Authorization": f"Bearer {token}"}, timeout=30)
    response.raise_for_status()
    return dict(response.json())


def _instance_pids(marker: str, deployment: str) -> list[int]:
    """Scoring-server processes of one deployment, told by the variable the test gave them."""
    wanted = f"OBS_DEPLOYMENT={marker}-{deployment}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if wanted in environ and b"scoring_servers.azureml" in cmdline:
            pids.append(int(entry.name))
    return pids


class Client:
    """Sends scoring requests and counts each by kind, so the test knows exactly what it sent."""

    def __init__(self, gateway: RunningGateway, key: str) -> None:
        self.url = f"{gateway.scoring_url}/endpoints/{ENDPOINT}/score"
        self.key = key
        self.sent: Counter[str] = Counter()
        self.http = httpx.Client(timeout=30)

    def send(self, kind: str, i: int = 0, deployment: str | None = None,
             key: str | None = None) -> int:
        fail = i % FAIL_EVERY == FAIL_EVERY - 1
        headers = {"Authorization": f"Bearer {key or self.key}", "Content-Type": "application/json"}
        if deployment is not None:
            headers["azureml-model-deployment"] = deployment
        body = json.dumps({"data": [[i, i / 2]], "fail": fail}).encode()
        status = self.http.post(self.url, content=body, headers=headers).status_code
        self.sent[kind + ("-fail" if fail else "")] += 1
        return status


def _random_name(rng: random.Random) -> str:
    shapes = [
        lambda: "dep" + "".join(rng.choices(string.ascii_lowercase + string.digits, k=12)),
        lambda: "".join(rng.choices(string.ascii_letters + string.digits + "-_./:", k=40)),
        lambda: "x" * rng.randint(100, 300),
    ]
    return rng.choice(shapes)()


def _load(client: Client, prometheus: Prometheus) -> None:
    """The load, in two halves with a scrape between, so every new series is seen to grow."""
    jobs = ([("live", i, None) for i in range(N_LIVE)]
            + [(f"direct:{SHADOW}", i, SHADOW) for i in range(N_DIRECT_SHADOW)]
            + [(f"direct:{LIVE}", i, LIVE) for i in range(N_DIRECT_LIVE)])
    random.Random(4).shuffle(jobs)
    with ThreadPoolExecutor(4) as pool:
        for half in (jobs[::2], jobs[1::2]):
            prometheus.wait_for_scrape_after(time.time())
            list(pool.map(lambda job: client.send(job[0], job[1], job[2]), half))
        list(pool.map(lambda i: client.send("unauthorized", 0, key=f"wrong-{uuid.uuid4().hex}"),
                      range(N_UNAUTHORIZED)))


def _random_headers(client: Client, prometheus: Prometheus,
                    since: float) -> tuple[tuple[str, ...], Series, Series]:
    """Random deployment names: a few first (the `none` series appear), then many more."""
    rng = random.Random(11)
    values = tuple(_random_name(rng) for _ in range(N_RANDOM_WARMUP + N_RANDOM))
    seen = []
    for batch in (values[:N_RANDOM_WARMUP], values[N_RANDOM_WARMUP:]):
        for value in batch:
            client.send("random", 0, value)
        prometheus.wait_for_scrape_after(time.time())
        seen.append(prometheus.series(SCOREGATE_SERIES, since))
    return values, seen[0], seen[1]


def _restart_each_deployment(marker: str, prometheus: Prometheus) -> None:
    """SIGKILL each deployment's instance once; the supervisor restarts it and counts it."""
    for name in (LIVE, SHADOW):
        pids = _instance_pids(marker, name)
        assert pids, f"no scoring-server process found for {name}"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
    for name in (LIVE, SHADOW):
        restarts = (f'sum(scoregate_instance_restarts_total{{endpoint="{ENDPOINT}", '
                    f'deployment="{name}"}})')
        wait_until(lambda query=restarts: prometheus.value(query) >= 1, timeout=60, interval=0.5,
                   what=f"{name}'s restart to reach Prometheus")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("observability")
    marker = uuid.uuid4().hex[:12]
    _write_config(tmp / "config", marker)
    with ProcessGroup(tmp / "process-logs") as group:
        gateway = start_scoregate(group, tmp / "home", tmp / "config")
        prometheus = start_prometheus(group, tmp / "prometheus",
                                      urlsplit(gateway.scoring_url).netloc)
        credentials = _credentials(gateway)
        client = Client(gateway, str(credentials["primaryKey"]))
        for name in (LIVE, SHADOW):
            wait_until(lambda name=name: client.send(f"direct:{name}", 0, name) == 200, timeout=60,
                       what=f"{name} to answer")
        load_started = time.time()
        _load(client, prometheus)
        random_values, before, after = _random_headers(client, prometheus, load_started - 60)
        client.http.close()
        _restart_each_deployment(marker, prometheus)
        prometheus.wait_for_scrape_after(time.time())

        secrets = (str(credentials["primaryKey"]), str(credentials["secondaryKey"]),
                   (gateway.home / "admin_token").read_text().strip())
        interval = f"{int(time.time() - load_started) + 30}s"
        yield Stack(gateway, prometheus, client.sent, random_values, before, after, secrets,
                    interval)


def _total(stack: Stack, matchers: str) -> float:
    return stack.prometheus.value(
        f'sum(scoregate_requests_total{{endpoint="{ENDPOINT}", {matchers}}})')


def test_request_counts_match_what_was_sent_exactly(stack: Stack) -> None:
    sent = stack.sent
    live = sent["live"] + sent["live-fail"]
    shadow = sent[f"direct:{SHADOW}"] + sent[f"direct:{SHADOW}-fail"]
    direct_live = sent[f"direct:{LIVE}"] + sent[f"direct:{LIVE}-fail"]
    assert live == N_LIVE
    assert _total(stack, f'deployment="{LIVE}", role="live"') == live
    assert _total(stack, f'deployment="{SHADOW}", role="direct"') == shadow
    assert _total(stack, f'deployment="{LIVE}", role="direct"') == direct_live
    assert _total(stack, f'deployment="{SHADOW}", role="live"') == 0
    live_424 = f'deployment="{LIVE}", role="live", status_code="424", model_status_code="500"'
    assert _total(stack, live_424) == sent["live-fail"]
    assert _total(stack, f'deployment="{SHADOW}", role="direct", status_code="424"') \
        == sent[f"direct:{SHADOW}-fail"]
    assert _total(stack, 'status_code="401"') == sent["unauthorized"] == N_UNAUTHORIZED
    assert _total(stack, 'deployment="none", status_code="404"') == sent["random"]
    assert _total(stack, 'role!="mirror"') == sum(sent.values())


def test_mirror_share_is_within_tolerance(stack: Stack) -> None:
    live = N_LIVE  # only requests that named no deployment are mirrored
    copies = stack.prometheus.value(
        f'sum(scoregate_mirror_copies_total{{endpoint="{ENDPOINT}", deployment="{SHADOW}", '
        f'outcome=~"sent|dropped"}})')
    share = copies / live
    sd = math.sqrt(MIRROR_PERCENT / 100 * (1 - MIRROR_PERCENT / 100) / live)
    assert abs(share - MIRROR_PERCENT / 100) < 4 * sd, f"mirror share {share:.3f}"
    mirrored = stack.prometheus.value(
        f'sum(scoregate_requests_total{{endpoint="{ENDPOINT}", deployment="{SHADOW}", '
        'role="mirror"})')
    assert 0 < mirrored <= copies
    assert stack.prometheus.value(
        f'sum(scoregate_mirror_copies_total{{endpoint="{ENDPOINT}", deployment="{LIVE}"}})') == 0


def _mirror_only(query: Query) -> bool:
    """Panels about mirror copies have no data for a deployment that is never mirrored to."""
    return 'role="mirror"' in query.expr or "scoregate_mirror_copies_total" in query.expr


@pytest.mark.parametrize("deployment", [SHADOW, LIVE])
def test_every_dashboard_expression_returns_data_for_the_deployment(stack: Stack,
                                                                   deployment: str) -> None:
    checked = 0
    empty = []
    for query in queries(load_dashboard()):
        if deployment == LIVE and _mirror_only(query):
            continue
        result = stack.prometheus.query(query.runnable(ENDPOINT, deployment, stack.rate_interval))
        values = [float(series["value"][1]) for series in result]
        if not any(math.isfinite(v) for v in values):
            empty.append(f"{query.panel} [{query.ref_id}]: {result}")
        for series in result:
            labels = series["metric"]
            assert labels.get("deployment", deployment) == deployment, (query, labels)
            assert labels.get("endpoint", ENDPOINT) == ENDPOINT, (query, labels)
        checked += 1
    assert not empty, "expressions without data:\n" + "\n".join(empty)
    assert checked >= 10


def test_dashboard_variables_list_the_configured_names(stack: Stack) -> None:
    prometheus = stack.prometheus
    assert ENDPOINT in prometheus.label_values("endpoint", "scoregate_traffic_percent")
    assert prometheus.label_values(
        "deployment", f'scoregate_traffic_percent{{endpoint="{ENDPOINT}"}}') == {LIVE, SHADOW}
    traffic = f'scoregate_traffic_percent{{endpoint="{ENDPOINT}", deployment="{LIVE}"}}'
    mirror = f'scoregate_mirror_percent{{endpoint="{ENDPOINT}", deployment="{SHADOW}"}}'
    assert prometheus.value(traffic) == 100
    assert prometheus.value(mirror) == MIRROR_PERCENT


def test_random_routing_headers_create_no_series(stack: Stack) -> None:
    assert stack.series_after_random == stack.series_after_warmup
    deployments = stack.prometheus.label_values("deployment", '{__name__=~"scoregate_.+"}')
    assert deployments <= {LIVE, SHADOW, "none"}, deployments
    exposed = httpx.get(f"{stack.gateway.scoring_url}/metrics", timeout=30).text
    leaked = [v for v in stack.random_values if v in exposed]
    assert not leaked, f"header values became label values: {leaked[:3]}"


def test_no_secret_appears_in_any_log_line(stack: Stack) -> None:
    instance_logs = sorted((stack.gateway.home / "logs").rglob("*.log"))
    assert len(instance_logs) >= 2, "expected a log per managed instance"
    logs = [stack.gateway.started.log_path] + instance_logs
    lines = [line for path in logs for line in path.read_text(errors="replace").splitlines()]
    # The access log is on: at least one line per request, so the check reads real traffic.
    assert sum(ENDPOINT in line for line in lines) >= sum(stack.sent.values())
    for secret in stack.secrets:
        assert len(secret) >= 16
        leaked = [line for line in lines if secret in line]
        assert not leaked, f"a secret appears in the logs: {leaked[0][:200]}"
    wrong_keys = [line for line in lines if "wrong-" in line]
    assert not wrong_keys, f"a client's Authorization value is logged: {wrong_keys[0][:200]}"
