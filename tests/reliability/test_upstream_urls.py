"""Deployment URLs that cannot go into a request line (issue 10, bug 2).

They are refused at create (rule `url`); one that reaches the gateway anyway (a state stored
before the rule, a snapshot built by hand) costs a 502 per request and never a socket.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from control_plane.errors import ConfigError, ValidationError
from control_plane.specs import loader
from control_plane.specs.resources import DeploymentSpec
from control_plane.specs.validation import validate_deployment
from tests.gateway.harness import deployment, endpoint, fire, start_backend, start_gateway
from tests.support.processes import ProcessGroup, wait_until

BAD_URLS = ("http://127.0.0.1:9000/中/score", "http://127.0.0.1:9000/a b/score",
            "http://127.0.0.1:9000/a\tb/score", "http://127.0.0.1:9000/a\nb",
            "http://127.0.0.1:9000/caf\u00e9", "http://127.0.0.1:9000/a\x7fb")


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_url_that_is_not_printable_ascii_is_refused_at_create(url: str,
                                                                tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as raised:
        validate_deployment(DeploymentSpec("blue", "my-endpoint", urls=(url,)))
    assert raised.value.rule == "url"
    assert "percent-encode" in str(raised.value)
    path = tmp_path / "blue.yml"
    path.write_text(f"name: blue\nendpoint_name: my-endpoint\nurl: {json.dumps(url)}\n")
    with pytest.raises(ConfigError) as loaded:
        loader.load_file(path)
    assert "rule: url" in str(loaded.value)


def test_percent_encoded_urls_are_accepted() -> None:
    validate_deployment(DeploymentSpec("blue", "my-endpoint",
                                       urls=("http://127.0.0.1:9000/%E4%B8%AD/a%20b/score",)))


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_an_unencodable_upstream_url_leaks_no_socket(tmp_path: Path) -> None:
    """300 requests to a deployment whose path does not encode: 502 each, fds flat (was +1 per
    request, with a text/plain 500 and a traceback)."""
    with ProcessGroup(tmp_path / "logs") as processes:
        backend = start_backend(processes, tmp_path, "good")
        broken = deployment("broken", backend)
        broken["instances"][0]["score_path"] = "/中/score"
        gateway = start_gateway(processes, tmp_path, [
            endpoint("ep", [broken, deployment("good", backend)], {"broken": 100})])
        pid = gateway.started.proc.pid
        url = f"{gateway.url}/endpoints/ep/score"
        first = fire(url, 10, 2)
        before = _open_fds(pid)
        replies = first + fire(url, 300, 4)
        assert {reply.status for reply in replies} == {502}
        assert all("message" in reply.json() for reply in replies)
        wait_until(lambda: _open_fds(pid) <= before + 8, timeout=10,
                   what=f"gateway fds back near {before} (now {_open_fds(pid)})")
        assert "Traceback" not in gateway.started.log()
