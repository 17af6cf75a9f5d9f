"""A shadow deployment that answers 10 MiB (issue 10, "Mirror with big shadow answers").

Mirror copies read a shadow's answer only as far as comparison needs (`--compare-max-body-kb`)
and drop the rest as it streams, so memory stays bounded however large the shadow's answers
are (it rose to 386 MB). The isolation property for this shadow is
`test_upstream_faults.py::test_mirror_to_a_faulty_shadow_leaves_the_primary_alone[big]`.
"""

from __future__ import annotations

import re

import httpx

from tests.reliability.load import fire, numbered
from tests.reliability.proc import PeakRss, rss_mb
from tests.reliability.stack import MIRRORED, Stack
from tests.support.processes import wait_until

SERVE_FLAGS = ("--compare-percent", "100", "--mirror-max-in-flight", "32")


def _copies(stack: Stack, outcome: str) -> float:
    text = httpx.get(stack.gateway.scoring_url + "/metrics", timeout=10).text
    pattern = (r'^scoregate_mirror_copies_total\{.*deployment="big".*outcome="' + outcome +
               r'".*\} (\S+)$')
    return sum(float(m.group(1)) for m in re.finditer(pattern, text, re.MULTILINE))


def test_big_shadow_answers_keep_memory_bounded(stack: Stack) -> None:
    pid = stack.gateway.started.proc.pid
    url = f"{stack.gateway.scoring_url}/endpoints/{MIRRORED}/score"
    headers = {"Authorization": f"Bearer {stack.keys[MIRRORED]}"}
    assert stack.admin("PUT", f"/v1/endpoints/{MIRRORED}/mirror-traffic",
                       json={"big": 50}).status_code == 200
    try:
        fire(url, numbered(20, "warm"), headers, concurrency=4)
        wait_until(lambda: _copies(stack, "sent") == _copies(stack, "completed"), timeout=60,
                   what="warm-up copies done")
        before = rss_mb(pid)
        with PeakRss(pid) as watch:
            results = fire(url, numbered(200), headers, concurrency=8)
            assert {r.status for r in results} == {200}
            wait_until(lambda: _copies(stack, "sent") == _copies(stack, "completed"),
                       timeout=120, what="every copy done")
        peak = watch.peak
        report = stack.admin("GET", f"/v1/endpoints/{MIRRORED}/deployments/big/compare")
        counts = report.json()["counts"]
        assert counts["incomparable"] > 0 and counts["match"] == counts["mismatch"] == 0
        # ~100 copies of 10 MiB went by; each in flight holds its buffers, not its answer.
        assert peak - before < 60, (before, peak)
    finally:
        stack.admin("PUT", f"/v1/endpoints/{MIRRORED}/mirror-traffic", json={"big": 0})
