"""Shadow comparison end to end: a real `scoregate serve`, real scoring-server instances, and
`scoregate online-deployment compare` reading what the gateway counted."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.support.gateway import RunningGateway, metric, start_serve
from tests.support.processes import ProcessGroup, wait_until

E = "compare-endpoint"
KEEP = 3
SCORE_PY = '''
import json
import os


def init():
    global scale
    scale = float(os.environ["SCALE"])


def run(raw_data):
    return [x * scale for x in json.loads(raw_data)["data"]]
'''


def write_config(folder: Path) -> None:
    code = folder / "code"
    code.mkdir(parents=True)
    (code / "score.py").write_text(SCORE_PY)
    (folder / "endpoint.yml").write_text(
        f"name: {E}\nauth_mode: key\ntraffic:\n  blue: 100\nmirror_traffic:\n  green: 50\n")
    for name, scale in (("blue", "1.0"), ("green", "1.01")):
        (folder / f"{name}.yml").write_text(
            f"name: {name}\nendpoint_name: {E}\ncode_configuration:\n  code: code\n"
            f"  scoring_script: score.py\nenvironment_variables:\n  SCALE: '{scale}'\n"
            "instance_count: 1\n")


def mirror_copies(gateway: RunningGateway) -> tuple[float, float]:
    """(copies sent to green, copies finished) from the gateway's own metrics."""
    text = httpx.get(f"{gateway.scoring_url}/metrics", timeout=10).text
    labels = {"endpoint": E, "deployment": "green"}
    finished = sum(metric(text, "scoregate_mirror_copies_total", outcome=o, **labels)
                   for o in ("completed", "failed"))
    return metric(text, "scoregate_mirror_copies_total", outcome="sent", **labels), finished


def test_compare_through_serve_and_cli(processes: ProcessGroup, tmp_path: Path) -> None:
    write_config(tmp_path / "config")
    gateway = start_serve(processes, tmp_path / "home", str(tmp_path / "config"),
                            extra=("--compare-tolerance", "1e-3", "--compare-keep", str(KEEP)))
    key = gateway.key(E)
    request_ids = []
    with httpx.Client(timeout=30) as client:
        for index in range(40):
            body = json.dumps({"data": [index + 1.5, 100.0 * index + 3.0]}).encode()
            response = gateway.score(E, body, key, client=client)
            assert response.status_code == 200, response.text
            assert response.json() == [index + 1.5, 100.0 * index + 3.0]  # blue answers
            request_ids.append(response.headers["x-request-id"])

    def judged() -> bool:
        sent, finished = mirror_copies(gateway)
        report = gateway.cli_json("online-deployment", "compare", "--name", "green",
                                  "--endpoint-name", E)
        return sent == finished and report["compared"] == sent

    wait_until(judged, timeout=60, interval=0.5, what="every mirror copy to be compared")
    sent, _ = mirror_copies(gateway)
    assert 0 < sent < 40  # 50% mirrored
    report = gateway.cli_json("online-deployment", "compare", "--name", "green",
                              "--endpoint-name", E)
    assert report["counts"] == {"match": 0, "mismatch": sent, "shadow_error": 0,
                                "incomparable": 0}
    assert report["agreement_rate"] == 0.0 and report["rel_tolerance"] == 1e-3
    kept = report["last_mismatches"]
    assert len(kept) == min(KEEP, sent)
    assert {pair["request_id"] for pair in kept} <= set(request_ids)
    first = kept[0]
    live, shadow = json.loads(first["live"]["body"]), json.loads(first["shadow"]["body"])
    assert [round(x * 1.01, 9) for x in live] == [round(x, 9) for x in shadow]
    assert "relative difference" in first["reason"]
    assert 0 < report["memory_bytes"] <= report["memory_limit_bytes"]

    table = gateway.cli("online-deployment", "compare", "--name", "green", "--endpoint-name", E,
                        "-o", "table").stdout
    assert "agreement_rate" in table and "memory_bytes" in table

    blue = gateway.cli_json("online-deployment", "compare", "--name", "blue", "--endpoint-name", E)
    assert blue["compared"] == 0 and blue["agreement_rate"] is None

    missing = gateway.cli("online-deployment", "compare", "--name", "nope", "--endpoint-name", E,
                          check=False)
    assert missing.returncode == 1 and "nope" in missing.stderr
