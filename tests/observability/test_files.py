"""The shipped observability assets parse, and point at each other and at files that exist.

Docker cannot run here, so docker-compose.yml and the Dockerfile are checked with parsers and
cross-checked against the other files they name (mounts, ports, the provisioned datasource).
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.observability.dashboard import (
    CONFIG,
    VARIABLES,
    check_expressions_parse,
    load_dashboard,
    panels,
    promtool,
    queries,
    substitute,
    variable_selector,
    variables,
)
from tests.support.processes import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
PROMETHEUS_YML = CONFIG / "prometheus" / "prometheus.yml"
DATASOURCES = CONFIG / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = CONFIG / "grafana" / "provisioning" / "dashboards" / "scoregate.yml"
INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
                "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
# What `pip install .` and the build-time training need from the build context.
BUILD_INPUTS = ("pyproject.toml", "README.md", "gateway/app.py", "control_plane/cli/main.py",
                "scoring_servers/azureml/__init__.py", "config/examples/blue-green/train.py")


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _compose() -> dict[str, Any]:
    return dict(_yaml(COMPOSE))


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        pending += line[:-1] + " " if line.endswith("\\") else line
        if line.endswith("\\"):
            continue
        word, _, args = pending.partition(" ")
        instructions.append((word, args.strip()))
        pending = ""
    if pending:
        raise ValueError(f"Dockerfile ends inside a continued line: {pending!r}")
    return instructions


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path → host source of each volume entry."""
    mounts = {}
    for entry in service.get("volumes", []):
        parts = entry.split(":")
        mounts[parts[1]] = parts[0]
    return mounts


def _host_path(source: str, container_path: str, mounts: dict[str, str]) -> Path | None:
    """The host file behind `container_path`, through the bind mounts of one service."""
    for target, src in mounts.items():
        inside = container_path == target or container_path.startswith(target + "/")
        if src.startswith(".") and inside:
            return REPO_ROOT / src / container_path[len(target):].lstrip("/")
    return None


def _ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore matching (last matching pattern wins; a path is ignored with its parents)."""
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        forms = {pattern, pattern.removeprefix("**/")}
        if any(fnmatch.fnmatchcase(c, form) for c in candidates for form in forms):
            ignored = not negate
    return ignored


# docker-compose.yml


def test_compose_has_the_three_services_with_loopback_ports() -> None:
    services = _compose()["services"]
    assert set(services) == {"gateway", "prometheus", "grafana"}
    expected_ports = {"gateway": "8080", "prometheus": "9090", "grafana": "3000"}
    for name, container_port in expected_ports.items():
        ports = services[name]["ports"]
        assert all(re.fullmatch(r"(127\.0\.0\.1:)?\d+:\d+", str(p)) for p in ports), ports
        assert container_port in [str(p).rsplit(":", 1)[1] for p in ports]
    assert services["gateway"]["build"] == "."
    assert services["prometheus"]["image"].startswith("prom/prometheus")
    assert services["grafana"]["image"].startswith("grafana/grafana")


def test_compose_mounts_exist_and_named_volumes_are_declared() -> None:
    compose = _compose()
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for target, source in _mounts(service).items():
            assert target.startswith("/"), f"{name}: {target}"
            if source.startswith("."):
                assert (REPO_ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"


def test_prometheus_service_reads_the_shipped_config() -> None:
    service = _compose()["services"]["prometheus"]
    flags = dict(arg.split("=", 1) for arg in service["command"])
    config = _host_path(".", flags["--config.file"], _mounts(service))
    assert config is not None and config.resolve() == PROMETHEUS_YML.resolve()


def test_grafana_is_anonymous_viewer_with_the_dashboard_as_home() -> None:
    service = _compose()["services"]["grafana"]
    env = {k: str(v) for k, v in service["environment"].items()}
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    mounts = _mounts(service)
    home = _host_path(".", env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"], mounts)
    dashboard = CONFIG / "grafana" / "dashboards" / "scoregate.json"
    assert home is not None and home.resolve() == dashboard.resolve()
    datasources = _host_path(".", "/etc/grafana/provisioning/datasources/prometheus.yml", mounts)
    assert datasources is not None and datasources.resolve() == DATASOURCES.resolve()
    # The dashboard provider reads the folder the dashboards are mounted at.
    provider_path = _yaml(PROVIDERS)["providers"][0]["options"]["path"]
    folder = _host_path(".", provider_path, mounts)
    assert folder is not None and (folder / "scoregate.json").is_file()


def test_provisioned_datasource_is_the_compose_prometheus_and_the_dashboards_uid() -> None:
    source = _yaml(DATASOURCES)["datasources"][0]
    assert source["type"] == "prometheus"
    assert re.fullmatch(r"http://prometheus:9090/?", source["url"])
    dashboard = load_dashboard()
    used = {p["datasource"]["uid"] for p in panels(dashboard)}
    used |= {t["datasource"]["uid"] for p in panels(dashboard) for t in p.get("targets", [])}
    used |= {v["datasource"]["uid"] for v in variables(dashboard).values()}
    assert used == {source["uid"]}


# Dockerfile and .dockerignore


def test_dockerfile_is_well_formed() -> None:
    instructions = _dockerfile()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    assert {word for word, _ in instructions} <= INSTRUCTIONS
    by_word: dict[str, list[str]] = {}
    for word, args in instructions:
        by_word.setdefault(word, []).append(args)
    assert by_word["EXPOSE"] == ["8080 8081"]
    assert json.loads(by_word["CMD"][-1]) == [
        "scoregate", "serve", "config/examples/blue-green", "--host", "0.0.0.0", "--port", "8080"]
    runs = " ".join(by_word["RUN"])
    assert "pip install" in runs and "python config/examples/blue-green/train.py" in runs
    for args in by_word.get("HEALTHCHECK", []):
        json.loads(args.split("CMD", 1)[1])  # exec form


def test_dockerfile_copy_sources_exist() -> None:
    for word, args in _dockerfile():
        if word not in ("COPY", "ADD"):
            continue
        words = [w for w in args.split() if not w.startswith("--")]
        assert len(words) >= 2, f"{word} {args}"
        for source in words[:-1]:
            assert (REPO_ROOT / source).exists(), f"{word} source {source} does not exist"


@pytest.mark.parametrize("path", BUILD_INPUTS)
def test_build_inputs_exist_and_are_not_dockerignored(path: str) -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert not _ignored(path, patterns), f".dockerignore drops {path}, which the build needs"
    assert (REPO_ROOT / path).exists(), f"the image build needs {path}"


def test_dockerignore_matching_drops_what_it_should() -> None:
    patterns = ["tests", "**/__pycache__", "**/*.pkl", "!keep.pkl"]
    assert _ignored("tests/x.py", patterns)
    assert _ignored("gateway/__pycache__/a.pyc", patterns)
    assert _ignored("config/m/model.pkl", patterns)
    assert not _ignored("keep.pkl", patterns)
    assert not _ignored("gateway/app.py", patterns)


# prometheus.yml


def test_prometheus_scrapes_the_gateway_every_5s() -> None:
    config = _yaml(PROMETHEUS_YML)
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "scoregate"]
    assert job.get("scrape_interval", config["global"]["scrape_interval"]) == "5s"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert targets == ["gateway:8080"]
    assert "gateway" in _compose()["services"]


@pytest.mark.skipif(promtool() is None, reason="promtool not on PATH (Debian package: prometheus)")
def test_promtool_accepts_prometheus_yml() -> None:
    result = subprocess.run([str(promtool()), "check", "config", str(PROMETHEUS_YML)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# the dashboard


def test_dashboard_has_the_variables_and_every_panel_has_targets() -> None:
    dashboard = load_dashboard()
    found = variables(dashboard)
    assert set(VARIABLES) <= set(found)
    assert variable_selector(found["endpoint"])[1] == "endpoint"
    selector, label = variable_selector(found["deployment"])
    assert label == "deployment" and "$endpoint" in selector
    for panel in panels(dashboard):
        if panel.get("type") != "row":
            assert panel.get("targets"), f"panel {panel.get('title')!r} has no targets"
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_every_expression_uses_both_variables() -> None:
    for query in queries(load_dashboard()):
        for name in VARIABLES:
            assert f"${name}" in query.expr, f"{query.panel} {query.ref_id} does not use ${name}"


def test_dashboard_covers_the_required_metrics() -> None:
    text = " ".join(q.expr for q in queries(load_dashboard()))
    for needle in ("scoregate_requests_total", "scoregate_traffic_percent",
                   "scoregate_mirror_percent", "scoregate_request_duration_seconds_bucket",
                   "scoregate_mirror_copies_total", "scoregate_upstream_duration_seconds_bucket",
                   'role="mirror"', "scoregate_ready_instances",
                   "scoregate_instance_restarts_total", "histogram_quantile(0.5,",
                   "histogram_quantile(0.95,", "histogram_quantile(0.99,",
                   "408|424|429", "status_class"):
        assert needle in text, f"no dashboard expression uses {needle}"


def test_annotations_mark_rollout_verdicts_and_auto_deploy_stages() -> None:
    exprs = " ".join(a.get("expr", "") for a in load_dashboard()["annotations"]["list"])
    for needle in ("scoregate_rollout_verdicts_total", "scoregate_autodeploy_stages_total"):
        assert needle in exprs, f"no annotation uses {needle}"


@pytest.mark.skipif(promtool() is None, reason="promtool not on PATH (Debian package: prometheus)")
def test_every_expression_parses(tmp_path: Path) -> None:
    dashboard = load_dashboard()
    expressions = [q.runnable("my-endpoint", "blue") for q in queries(dashboard)]
    expressions += [variable_selector(v)[0].replace("$endpoint", "my-endpoint")
                    for v in variables(dashboard).values()]
    expressions += [substitute(a["expr"], "my-endpoint", "blue", "30s")
                    for a in dashboard["annotations"]["list"] if "expr" in a]
    assert all("$" not in e for e in expressions), "a variable was left unsubstituted"
    result = check_expressions_parse(expressions, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(expressions)} rules found" in result.stdout


@pytest.mark.skipif(promtool() is None, reason="promtool not on PATH (Debian package: prometheus)")
def test_the_parse_check_rejects_a_broken_expression(tmp_path: Path) -> None:
    result = check_expressions_parse(["sum(rate(scoregate_requests_total[30s])"], tmp_path)
    assert result.returncode != 0
