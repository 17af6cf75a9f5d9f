"""Hostile admin bodies: deep nesting, huge values and huge bodies get a JSON 4xx whose message
stays short, never a 500; bodies above the cap are refused (413) whether declared or chunked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from control_plane.admin.app import MAX_ADMIN_BODY_BYTES
from control_plane.errors import ECHO_LIMIT
from tests.support.gateway import RunningGateway, start_serve
from tests.support.processes import ProcessGroup

E = "bodies"
MESSAGE_LIMIT = ECHO_LIMIT * 3  # the message's own words around at most two echoed values


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    tmp = tmp_path_factory.mktemp("bodies")
    folder = tmp / "config"
    folder.mkdir()
    (folder / "endpoint.yml").write_text(f"name: {E}\nauth_mode: key\ntraffic: {{blue: 100}}\n")
    (folder / "blue.yml").write_text(f"name: blue\nendpoint_name: {E}\n"
                                     "urls: [http://127.0.0.1:9/score]\n")
    with ProcessGroup(tmp / "process-logs") as group:
        yield start_serve(group, tmp / "home", str(folder))


def _put(gateway: RunningGateway, route: str, content: Any) -> httpx.Response:
    token = (Path(gateway.home) / "admin_token").read_text().strip()
    return httpx.put(f"{gateway.admin_url}/v1/endpoints/{E}/{route}", content=content,
                     headers={"Authorization": f"Bearer {token}",
                              "Content-Type": "application/json"}, timeout=60)


def _nested(depth: int) -> bytes:
    return b'{"blue": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"


@pytest.mark.parametrize("route", ["traffic", "mirror-traffic"])
@pytest.mark.parametrize("depth", [10, 900, 2000])
def test_deep_nesting_is_a_400_with_a_short_message(gateway: RunningGateway, route: str,
                                                   depth: int) -> None:
    answer = _put(gateway, route, _nested(depth))
    assert answer.status_code == 400, answer.text
    assert len(answer.json()["message"]) < MESSAGE_LIMIT


@pytest.mark.parametrize("route", ["traffic", "mirror-traffic"])
def test_a_huge_value_is_not_echoed_whole(gateway: RunningGateway, route: str) -> None:
    long_name = "n" * (MAX_ADMIN_BODY_BYTES // 3)
    for body in (b'{"blue": "' + b"x" * (MAX_ADMIN_BODY_BYTES // 2) + b'"}',
                 b'{"' + long_name.encode() + b'": 10}',
                 b'{"' + long_name.encode() + b'": "x"}'):
        answer = _put(gateway, route, body)
        assert answer.status_code == 400, answer.text[:300]
        assert len(answer.json()["message"]) < MESSAGE_LIMIT, answer.text[:300]


def test_a_declared_body_above_the_cap_is_a_413(gateway: RunningGateway) -> None:
    answer = _put(gateway, "traffic", b" " * (MAX_ADMIN_BODY_BYTES + 1))
    assert answer.status_code == 413
    assert "larger than the admin API accepts" in answer.json()["message"]


def test_a_chunked_body_above_the_cap_is_a_413(gateway: RunningGateway) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(8 * MAX_ADMIN_BODY_BYTES // 65536):
            yield b" " * 65536

    answer = _put(gateway, "traffic", chunks())
    assert answer.status_code == 413
    assert "larger than the admin API accepts" in answer.json()["message"]


def test_a_body_under_the_cap_still_works(gateway: RunningGateway) -> None:
    answer = _put(gateway, "traffic", b'{"blue": 100}' + b" " * (MAX_ADMIN_BODY_BYTES - 100))
    assert answer.status_code == 200, answer.text
