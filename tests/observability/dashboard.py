"""Read the shipped Grafana dashboard and turn its PromQL into plain, runnable expressions.

Both observability tests check the same expressions (one parses them, one runs them against a
real Prometheus), so reading the JSON and substituting Grafana's variables lives here, once.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.observability.prometheus import prometheus_tool
from tests.support.processes import REPO_ROOT

CONFIG = REPO_ROOT / "config"
DASHBOARD = CONFIG / "grafana" / "dashboards" / "scoregate.json"
VARIABLES = ("endpoint", "deployment")
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


@dataclass(frozen=True)
class Query:
    """One PromQL expression of one panel, as Grafana stores it."""

    panel: str
    ref_id: str
    expr: str

    def runnable(self, endpoint: str, deployment: str, rate_interval: str = "30s") -> str:
        """The expression with the dashboard variables replaced, as Grafana would send it."""
        return substitute(self.expr, endpoint, deployment, rate_interval)


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> list[Query]:
    return [Query(panel["title"], target["refId"], target["expr"])
            for panel in panels(dashboard) if panel.get("type") != "row"
            for target in panel.get("targets", [])]


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {var["name"]: var for var in dashboard.get("templating", {}).get("list", [])}


def variable_selector(variable: dict[str, Any]) -> tuple[str, str]:
    """`label_values(<selector>, <label>)` of a query variable, split into its two parts."""
    query = variable["query"]
    text = query["query"] if isinstance(query, dict) else query
    match = _LABEL_VALUES.match(text.strip())
    if match is None:
        raise ValueError(f"variable {variable['name']!r}: not a label_values(...) query: {text!r}")
    return match["selector"], match["label"]


def substitute(expr: str, endpoint: str, deployment: str, rate_interval: str = "30s") -> str:
    return (expr.replace("$__rate_interval", rate_interval)
            .replace("$endpoint", endpoint)
            .replace("$deployment", deployment))


def promtool() -> str | None:
    return prometheus_tool("promtool")


def check_expressions_parse(expressions: list[str],
                            workdir: Path) -> subprocess.CompletedProcess[str]:
    """Parse PromQL offline: each expression becomes a recording rule for `promtool check rules`."""
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:expr_{i}", "expr": expr} for i, expr in enumerate(expressions)]}]}
    path = workdir / "dashboard-rules.json"  # JSON is YAML, so promtool reads it as is
    path.write_text(json.dumps(rules))
    tool = promtool()
    if tool is None:
        raise FileNotFoundError("promtool is not on PATH (Debian package: prometheus)")
    return subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True,
                          timeout=60)
