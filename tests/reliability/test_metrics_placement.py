"""`serve --metrics-on admin` (issue 10): /metrics leaves the scoring port for the admin
listener, where it needs no token (a scraper should not hold the admin credential); every
other admin path still does."""

from __future__ import annotations

import httpx

from tests.reliability.stack import Stack

SERVE_FLAGS = ("--metrics-on", "admin")


def test_metrics_move_to_the_admin_listener(stack: Stack) -> None:
    assert stack.post("good").status_code == 200
    scoring = httpx.get(stack.gateway.scoring_url + "/metrics", timeout=10)
    assert scoring.status_code == 404 and "message" in scoring.json()
    admin = httpx.get(stack.gateway.admin_url + "/metrics", timeout=10)
    assert admin.status_code == 200
    assert 'scoregate_requests_total{' in admin.text and 'deployment="good"' in admin.text
    assert httpx.get(stack.gateway.admin_url + "/v1/endpoints", timeout=10).status_code == 401
