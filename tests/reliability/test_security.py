"""Who gets in, and what can be read: credentials on every scoring and admin route, the admin
API kept off the scoring port, owner-only state files, no file read through names or paths."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from pathlib import Path

import httpx
import pytest

from control_plane.admin.token import load_admin_token
from control_plane.errors import ConfigError
from control_plane.home import StateDir
from control_plane.specs.loader import load_file
from control_plane.store.sqlite_store import Store
from gateway.auth import issue_token
from tests.reliability.stack import FAULTS, Stack

TOKENS = "tokens"


def token_secret(stack: Stack) -> bytes:
    store = Store(stack.gateway.home)
    try:
        return store.secrets(TOKENS).token_secret
    finally:
        store.close()


def valid_token(stack: Stack) -> str:
    answer = stack.admin("POST", f"/v1/endpoints/{TOKENS}/get-credentials")
    return str(answer.json()["accessToken"])


def tampered(token: str) -> str:
    """The same signature on a payload that lives a day longer."""
    payload, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["exp"] += 86400
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return f"{forged}.{signature}"


def bad_credentials(stack: Stack, endpoint: str) -> dict[str, str | None]:
    other = "other" if endpoint != "other" else FAULTS
    token = valid_token(stack)
    secret = token_secret(stack)
    expired, _ = issue_token(TOKENS, secret, 60, now=time.time() - 3600)
    cross, _ = issue_token(endpoint if endpoint != TOKENS else FAULTS, secret, 60)
    cases: dict[str, str | None] = {
        "none": None, "empty bearer": "Bearer", "wrong key": "Bearer not-the-key",
        "another endpoint's key": f"Bearer {stack.keys[other]}",
        "admin token": f"Bearer {stack.admin_token}",
        "expired token": f"Bearer {expired}", "tampered token": f"Bearer {tampered(token)}",
        "token signed for another endpoint": f"Bearer {cross}",
        "basic scheme": "Basic " + base64.b64encode(b"user:pass").decode(),
    }
    if endpoint != TOKENS:
        cases["key without Bearer"] = stack.keys[endpoint]
        cases["key with a suffix"] = f"Bearer {stack.keys[endpoint]}x"
        cases["a token on a key endpoint"] = f"Bearer {token}"
    return cases


def good_credential(stack: Stack, endpoint: str) -> str:
    return f"Bearer {valid_token(stack) if endpoint == TOKENS else stack.keys[endpoint]}"


@pytest.mark.parametrize("endpoint", [FAULTS, "other", TOKENS])
@pytest.mark.parametrize("route", ["score", "swagger.json"])
def test_scoring_routes_refuse_every_bad_credential(stack: Stack, endpoint: str,
                                                    route: str) -> None:
    url = f"{stack.gateway.scoring_url}/endpoints/{endpoint}/{route}"
    method = "POST" if route == "score" else "GET"
    stack.forget()
    for case, value in bad_credentials(stack, endpoint).items():
        headers = {} if value is None else {"Authorization": value}
        answer = httpx.request(method, url, headers=headers, content=b"{}", timeout=30)
        assert answer.status_code == 401, (case, answer.text)
        assert list(answer.json()) == ["message"], case
    assert stack.seen() == []  # nothing reached a model
    good = httpx.request(method, url, headers={"Authorization": good_credential(stack, endpoint)},
                         content=b"{}", timeout=30)
    assert good.status_code != 401  # the same request with the right credential gets in


def admin_routes(stack: Stack) -> list[tuple[str, str]]:
    document = httpx.get(stack.gateway.admin_url + "/openapi.json", timeout=30).json()
    routes = []
    for path, operations in document["paths"].items():
        concrete = path.replace("{endpoint}", FAULTS).replace("{deployment}", "good")
        routes += [(method.upper(), concrete) for method in operations
                   if method in ("get", "post", "put", "patch", "delete")]
    return routes


def test_every_admin_route_refuses_every_bad_credential(stack: Stack) -> None:
    routes = admin_routes(stack)
    assert len(routes) >= 15
    wrong = {"none": None, "wrong": "Bearer nope", "scoring key": f"Bearer {stack.keys[FAULTS]}",
             "token without Bearer": stack.admin_token, "token plus a byte":
             f"Bearer {stack.admin_token}x", "basic": f"Basic {stack.admin_token}"}
    for method, path in routes:
        for case, value in wrong.items():
            headers = {} if value is None else {"Authorization": value}
            answer = httpx.request(method, stack.gateway.admin_url + path, headers=headers,
                                   json={}, timeout=30)
            assert answer.status_code == 401, (method, path, case, answer.text)
            assert list(answer.json()) == ["message"]
    answer = stack.admin("GET", f"/v1/endpoints/{FAULTS}")
    assert answer.status_code == 200  # the admin token itself works


@pytest.mark.parametrize("method, path", [
    ("GET", "/v1/endpoints"), ("GET", "/openapi.json"), ("POST", f"/v1/endpoints/{FAULTS}/"
                                                                 "get-credentials"),
    ("GET", f"/v1/endpoints/{FAULTS}/deployments/good/logs"), ("DELETE", f"/v1/endpoints/{FAULTS}"),
])
def test_admin_paths_on_the_scoring_port_are_not_found(stack: Stack, method: str,
                                                      path: str) -> None:
    for headers in ({}, {"Authorization": f"Bearer {stack.admin_token}"}):
        answer = httpx.request(method, stack.gateway.scoring_url + path, headers=headers,
                               timeout=30)
        assert answer.status_code in (404, 405), answer.text
        assert list(answer.json()) == ["message"]
        assert stack.keys[FAULTS] not in answer.text
    assert stack.admin("GET", f"/v1/endpoints/{FAULTS}").status_code == 200


def test_state_files_are_owner_only(stack: Stack) -> None:
    home = stack.gateway.home  # created by the test helper, so its own mode is the umask's
    assert stat.S_IMODE((home / "logs").stat().st_mode) == 0o700
    for name in ("state.db", "admin_token", "server.json"):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name
    for extra in home.glob("state.db-*"):  # SQLite's WAL and shared-memory files
        assert stat.S_IMODE(extra.stat().st_mode) & 0o077 == 0, extra.name


def test_a_new_state_directory_is_owner_only(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        state_dir = StateDir(tmp_path / "deep" / "home")
        state_dir.ensure()
        load_admin_token(state_dir.path, environ={})
        Store(state_dir.path).close()
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(state_dir.path.stat().st_mode) == 0o700
    assert stat.S_IMODE(state_dir.logs.stat().st_mode) == 0o700
    for name in ("state.db", "admin_token"):
        assert stat.S_IMODE((state_dir.path / name).stat().st_mode) == 0o600, name


TRAVERSALS = ["..", "%2e%2e", "..%2f..%2fetc", "good%2f..%2f..", "good%00", "etc%2fpasswd",
              "%2fetc%2fpasswd", "a" * 300]


@pytest.mark.parametrize("route", ["logs", "compare"])
def test_logs_and_compare_names_cannot_reach_files(stack: Stack, route: str) -> None:
    for name in TRAVERSALS:
        paths = [f"/v1/endpoints/{name}/deployments/good/{route}",
                 f"/v1/endpoints/{FAULTS}/deployments/{name}/{route}"]
        if name != "..":  # httpx itself folds a trailing /.. away
            paths.append(f"/v1/endpoints/{FAULTS}/deployments/good/{route}/{name}")
        for path in paths:
            answer = stack.admin("GET", path)
            assert answer.status_code in (400, 404), (path, answer.status_code, answer.text)
            assert "root:" not in answer.text and list(answer.json())[0] == "message"


def test_a_planted_symlink_in_the_log_folder_is_not_followed(stack: Stack) -> None:
    secret = stack.gateway.home.parent / "outside.txt"
    secret.write_text("TOP-SECRET-CONTENT\n")
    folder = stack.gateway.home / "logs" / FAULTS / "good"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "good-0.log").symlink_to(secret)
    answer = stack.admin("GET", f"/v1/endpoints/{FAULTS}/deployments/good/logs")
    assert answer.status_code == 200
    assert "TOP-SECRET" not in answer.text


@pytest.mark.parametrize("script", ["../outside.py", "{tmp}/outside.py", "sub/../../outside.py"])
def test_scoring_script_must_stay_inside_the_code_folder(tmp_path: Path, script: str) -> None:
    """Relative escapes and an absolute path are refused, though the script they name exists."""
    (tmp_path / "code" / "sub").mkdir(parents=True)
    (tmp_path / "outside.py").write_text("def init(): pass\ndef run(raw): return raw\n")
    script = script.format(tmp=tmp_path)  # absolute: this test's own folder, outside `code`
    deployment = tmp_path / "d.yml"
    deployment.write_text("name: blue\nendpoint_name: ep-one\ncode_configuration:\n"
                          f"  code: code\n  scoring_script: {script}\n")
    with pytest.raises(ConfigError, match="inside the code folder"):
        load_file(deployment)


def test_admin_api_bodies_follow_the_same_path_rules(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "outside.py").write_text("def init(): pass\ndef run(raw): return raw\n")
    bodies = [
        {"name": "sneaky", "code_dir": str(tmp_path / "code"), "scoring_script": "../outside.py"},
        {"name": "sneaky", "code_dir": "code", "scoring_script": "score.py"},  # relative
        {"name": "sneaky", "code_dir": str(tmp_path / "nope"), "scoring_script": "score.py"},
        {"name": "sneaky", "urls": ["file:///etc/passwd"]},
    ]
    for body in bodies:
        answer = stack.admin("POST", f"/v1/endpoints/{FAULTS}/deployments", json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert "message" in answer.json()
    assert os.path.exists(tmp_path / "outside.py")
