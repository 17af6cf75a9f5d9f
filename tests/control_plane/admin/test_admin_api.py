"""The admin API through real HTTP: a uvicorn process serving `build_admin_app` on a real Store.

The stand-in runtime publishes nothing (`apply_change` only counts) and reports one "ready"
instance per `instance_count`, so these tests are about the API alone. Run as a module
(`python -m tests.control_plane.admin.test_admin_api HOME`), this file is that server; it also
answers `/scoring/endpoints/{name}/score` (checking the endpoint's keys) for the CLI tests.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from control_plane.registry import STORE_EXTENSION as REGISTRY_EXTENSION
from control_plane.registry import ModelRegistry
from control_plane.rollouts.rows import STORE_EXTENSION
from control_plane.store.sqlite_store import Store
from tests.support.processes import ProcessGroup, wait_until

ADMIN_TOKEN = "test-admin-token-0123456789"


# --- the stand-in server (runs in its own process) -----------------------------------------

@dataclass(frozen=True)
class FakeInstance:
    id: str
    url: str | None
    state: str
    restarts: int = 0
    pid: int | None = None
    last_error: str | None = None


@dataclass
class StandInRuntime:
    store: Any
    admin_token: str
    scoring_url: str
    models: Any = None  # a real ModelRegistry on the same store
    scoring_on_loopback: bool = True
    version: int = 0
    rollouts: None = None  # no rollout engine: the rollout routes answer 503
    autodeploy: None = None  # nor auto-deploy: its routes answer 503, show has no policy
    environments: None = None  # no environments built: deployments run on the gateway's Python

    async def apply_change(self, build: bool = True) -> int:
        self.version += 1
        return self.version

    async def provision(self, key: str, wait: bool = True) -> None:
        """Every operation succeeds at once (no instances to wait for)."""
        endpoint, name = key.split("/")
        state = self.store.state()
        if key in state.deployments and state.status(key).in_progress:
            self.store.finish_provisioning(endpoint, name, state.deployments[key].etag,
                                           state.status(key).state, None)

    def instance_status(self, key: str) -> list[FakeInstance]:
        endpoint, name = key.split("/")
        count = self.store.deployment(endpoint, name).spec.instance_count
        return [FakeInstance(f"{name}-{i}", f"http://127.0.0.1:{9000 + i}", "ready")
                for i in range(count)]

    def scale_status(self, key: str) -> None:
        return None  # no autoscaler here
    def rolling_status(self, key: str) -> None:
        return None  # no rolling update ever ran
    def environment_status(self, key: str) -> None:
        return None  # every deployment runs on the gateway's interpreter here

    def logs(self, key: str, lines: int) -> str:
        if key.endswith("/explode"):
            raise RuntimeError("secret internal detail")
        return "\n".join(f"{key} line {i}" for i in range(1, 10_001)[-lines:]) + "\n"


def _stand_in_app(home: Path, url: str) -> Any:
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    from control_plane.admin.app import build_admin_app
    from gateway.auth import check_authorization
    from gateway.snapshot import EndpointRoute

    store = Store(home, (STORE_EXTENSION, REGISTRY_EXTENSION))
    registry = ModelRegistry(store, home)
    registry.recover()
    admin = build_admin_app(StandInRuntime(store, ADMIN_TOKEN, f"{url}/scoring", registry))

    async def score(scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        name = request.url.path.split("/")[3]
        spec, keys = store.endpoint(name).spec, store.secrets(name)
        route = EndpointRoute(name, spec.auth_mode, (keys.primary_key.encode(),
                                                     keys.secondary_key.encode()),
                              keys.token_secret)
        import time
        if not check_authorization(route, request.headers.get("authorization", "").encode(),
                                   time.time()):
            await JSONResponse({"message": "unauthorized"}, 401)(scope, receive, send)
            return
        answer = {"endpoint": name, "deployment": request.headers.get("azureml-model-deployment"),
                  "body": json.loads(await request.body())}
        await JSONResponse(answer)(scope, receive, send)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/scoring/endpoints/"):
            await score(scope, receive, send)
        else:
            await admin(scope, receive, send)

    return app


def serve_stand_in(home: Path) -> None:
    import uvicorn

    from control_plane.home import StateDir, write_atomically

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    state = StateDir(home)
    state.ensure()
    write_atomically(home / "admin_token", ADMIN_TOKEN.encode())
    server = uvicorn.Server(uvicorn.Config(_stand_in_app(home, url), log_level="warning",
                                           lifespan="off"))
    state.write_server_info(scoring_url=f"{url}/scoring", admin_url=url)
    asyncio.run(server.serve(sockets=[sock]))


# --- the client side ------------------------------------------------------------------------

@dataclass
class AdminServer:
    url: str
    home: Path

    @property
    def code_dir(self) -> Path:
        """A scoring-script folder that exists, for deployments created through the API."""
        return self.home.parent / "code"

    def call(self, method: str, path: str, body: Any = None, token: str | None = ADMIN_TOKEN,
             headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if body is not None:
            kwargs["content"] = body if isinstance(body, (bytes, str)) else json.dumps(body)
            sent.setdefault("Content-Type", "application/json")
        return httpx.request(method, f"{self.url}{path}", headers=sent, timeout=30, **kwargs)


def start_stand_in(processes: ProcessGroup, home: Path) -> AdminServer:
    started = processes.python("-m", "tests.control_plane.admin.test_admin_api", str(home),
                               name="admin-stand-in")

    def up() -> bool:
        if started.proc.poll() is not None:
            raise AssertionError(f"stand-in exited:\n{started.log()}")
        try:
            info = json.loads((home / "server.json").read_text())
            return httpx.get(f"{info['admin_url']}/openapi.json", timeout=2).status_code == 200
        except (OSError, ValueError, httpx.HTTPError):
            return False

    wait_until(up, timeout=60, what="the admin API stand-in")
    server = AdminServer(json.loads((home / "server.json").read_text())["admin_url"], home)
    server.code_dir.mkdir(exist_ok=True)
    (server.code_dir / "score.py").write_text("def init():\n    pass\n\n"
                                              "def run(raw):\n    return raw\n")
    return server


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminServer]:
    """One stand-in server per test module; each test uses its own endpoint names."""
    root = tmp_path_factory.mktemp("admin")
    with ProcessGroup(root / "process-logs") as processes:
        yield start_stand_in(processes, root / "home")


def make_endpoint(admin: AdminServer, name: str, *deployments: str, **fields: Any) -> None:
    created = admin.call("POST", "/v1/endpoints", {"name": name, **fields})
    assert created.status_code == 201, created.text
    for deployment in deployments:
        answer = admin.call("POST", f"/v1/endpoints/{name}/deployments", {
            "name": deployment, "code_dir": str(admin.code_dir), "scoring_script": "score.py"})
        assert answer.status_code == 201, answer.text


def etag(response: httpx.Response) -> str:
    return response.headers["ETag"]


# --- tests -----------------------------------------------------------------------------------

def test_every_route_needs_the_admin_token_but_the_document(admin: AdminServer) -> None:
    basic = {"Authorization": f"Basic {ADMIN_TOKEN}"}
    for token, headers in ((None, None), ("wrong-token", None), (ADMIN_TOKEN + "x", None),
                           (None, basic)):
        for method, path in (("GET", "/v1/endpoints"), ("POST", "/v1/endpoints"),
                             ("GET", "/v1/no-such-route")):
            answer = admin.call(method, path, token=token, headers=headers)
            assert answer.status_code == 401, (token, path)
            assert "admin token" in answer.json()["message"]
            assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert admin.call("GET", "/openapi.json", token=None).status_code == 200
    assert admin.call("GET", "/v1/endpoints").status_code == 200


def test_openapi_document_is_valid_and_lists_every_route(admin: AdminServer) -> None:
    from starlette.routing import Route

    from control_plane.admin.app import build_admin_app

    document = admin.call("GET", "/openapi.json", token=None).json()
    served = {(path, method) for path, item in document["paths"].items()
              for method in item if method != "parameters"}
    app = build_admin_app(StandInRuntime(None, "t", "http://x"))
    routed = {(route.path, method.lower()) for route in app.routes if isinstance(route, Route)
              for method in route.methods or () if method != "HEAD"}
    assert served == routed - {("/openapi.json", "get")}
    required = {
        ("/v1/endpoints", "get"), ("/v1/endpoints", "post"), ("/v1/endpoints/{endpoint}", "get"),
        ("/v1/endpoints/{endpoint}", "patch"), ("/v1/endpoints/{endpoint}", "delete"),
        ("/v1/endpoints/{endpoint}/traffic", "put"),
        ("/v1/endpoints/{endpoint}/mirror-traffic", "put"),
        ("/v1/endpoints/{endpoint}/get-credentials", "post"),
        ("/v1/endpoints/{endpoint}/regenerate-keys", "post"),
        ("/v1/endpoints/{endpoint}/deployments", "get"),
        ("/v1/endpoints/{endpoint}/deployments", "post"),
        ("/v1/endpoints/{endpoint}/deployments/{deployment}", "get"),
        ("/v1/endpoints/{endpoint}/deployments/{deployment}", "patch"),
        ("/v1/endpoints/{endpoint}/deployments/{deployment}", "delete"),
        ("/v1/endpoints/{endpoint}/deployments/{deployment}/logs", "get"),
    }
    assert required <= served, sorted(required - served)
    assert document["servers"] == [{"url": admin.url}]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                assert {"200", "201"} & operation["responses"].keys(), (path, method)
                assert "401" in operation["responses"]
    import openapi_spec_validator  # a test dependency (pyproject's test extra)

    openapi_spec_validator.validate(document)


def test_endpoint_create_show_list_update_delete(admin: AdminServer) -> None:
    created = admin.call("POST", "/v1/endpoints", {"name": "ep-life", "description": "first",
                                                   "tags": {"team": "a"},
                                                   "not_applied": {"$schema": "x"}})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["snapshot_version"] >= 1 and body["effective_at"].endswith("Z")
    assert etag(created) == f'"{body["etag"]}"'
    shown = admin.call("GET", "/v1/endpoints/ep-life")
    view = shown.json()
    assert view["scoring_uri"] == f"{admin.url}/scoring/endpoints/ep-life/score"
    assert view["swagger_uri"] == f"{admin.url}/scoring/endpoints/ep-life/swagger.json"
    assert {k: view[k] for k in ("name", "auth_mode", "traffic", "mirror_traffic",
                                 "provisioning_state", "description", "tags", "not_applied")} == {
        "name": "ep-life", "auth_mode": "key", "traffic": {}, "mirror_traffic": {},
        "provisioning_state": "Succeeded", "description": "first", "tags": {"team": "a"},
        "not_applied": {"$schema": "x"}}
    assert etag(shown) == etag(created)
    assert "ep-life" in [item["name"] for item in admin.call("GET", "/v1/endpoints").json()]

    patched = admin.call("PATCH", "/v1/endpoints/ep-life",
                         {"description": "second", "tags": {"owner": "b", "team": None}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["description"] == "second"
    assert patched.json()["tags"] == {"owner": "b"}
    assert patched.json()["snapshot_version"] > body["snapshot_version"]
    assert etag(patched) != etag(created)

    deleted = admin.call("DELETE", "/v1/endpoints/ep-life")
    assert deleted.status_code == 200 and "snapshot_version" in deleted.json()
    assert admin.call("GET", "/v1/endpoints/ep-life").status_code == 404
    assert admin.call("DELETE", "/v1/endpoints/ep-life").status_code == 404


def test_creating_what_exists_is_a_conflict(admin: AdminServer) -> None:
    make_endpoint(admin, "ep-twice", "blue")
    again = admin.call("POST", "/v1/endpoints", {"name": "ep-twice"})
    assert again.status_code == 409 and "update it instead" in again.json()["message"]
    again = admin.call("POST", "/v1/endpoints/ep-twice/deployments", {
        "name": "blue", "code_dir": str(admin.code_dir), "scoring_script": "score.py"})
    assert again.status_code == 409 and "update it instead" in again.json()["message"]


def test_deployments_create_show_patch_and_all_traffic(admin: AdminServer) -> None:
    make_endpoint(admin, "ep-deploy", "blue")
    created = admin.call("POST", "/v1/endpoints/ep-deploy/deployments?all_traffic=true",
                         {"name": "green", "model_path": str(admin.code_dir),
                          "code_dir": str(admin.code_dir), "scoring_script": "score.py",
                          "environment_variables": {"A": "1"},
                          "request_settings": {"max_concurrent_requests_per_instance": 3}})
    assert created.status_code == 201, created.text
    assert created.json()["endpoint_name"] == "ep-deploy"
    traffic = admin.call("GET", "/v1/endpoints/ep-deploy").json()["traffic"]
    assert traffic == {"blue": 0, "green": 100}

    patched = admin.call("PATCH", "/v1/endpoints/ep-deploy/deployments/green", {
        "instance_count": 2, "environment_variables": {"B": "2"},
        "request_settings": {"request_timeout_ms": 9000}})
    assert patched.status_code == 200, patched.text
    view = admin.call("GET", "/v1/endpoints/ep-deploy/deployments/green").json()
    assert view["environment_variables"] == {"A": "1", "B": "2"}
    assert view["request_settings"] == {"request_timeout_ms": 9000,
                                        "max_concurrent_requests_per_instance": 3}
    assert [(i["id"], i["state"]) for i in view["instances"]] == [
        ("green-0", "ready"), ("green-1", "ready")]
    listed = admin.call("GET", "/v1/endpoints/ep-deploy/deployments").json()
    assert sorted(item["name"] for item in listed) == ["blue", "green"]
    assert admin.call("GET", "/v1/endpoints/ep-deploy/deployments/nope").status_code == 404
    assert admin.call("GET", "/v1/endpoints/nope-nope/deployments").status_code == 404
    other = admin.call("POST", "/v1/endpoints/ep-deploy/deployments",
                       {"name": "red", "endpoint_name": "ep-other"})
    assert other.status_code == 400 and "ep-other" in other.json()["message"]
    relative = admin.call("POST", "/v1/endpoints/ep-deploy/deployments",
                          {"name": "red", "model_path": "models/m"})
    assert relative.status_code == 400 and "absolute" in relative.json()["message"]
    for body, words in (({"name": "red"}, "code_configuration"),
                        ({"name": "red", "code_dir": "/no/such/dir", "scoring_script": "s.py"},
                         "does not exist"),
                        ({"name": "red", "urls": ["ftp://x"]}, "http"),
                        ({"name": "red", "urls": ["http://127.0.0.1:9"],
                          "code_dir": str(admin.code_dir), "scoring_script": "score.py"},
                         "not both")):
        refused = admin.call("POST", "/v1/endpoints/ep-deploy/deployments", body)
        assert refused.status_code == 400 and words in refused.json()["message"], refused.text
    external = admin.call("POST", "/v1/endpoints/ep-deploy/deployments",
                          {"name": "ext", "urls": ["http://127.0.0.1:9"]})
    assert external.json()["urls"] == ["http://127.0.0.1:9/score"]


RULE_CASES = [
    ("name", "POST", "/v1/endpoints", {"name": "1-bad"}),
    ("name", "POST", "/v1/endpoints/ep-rules/deployments", {"name": "bad--name"}),
    ("auth-mode", "POST", "/v1/endpoints", {"name": "ep-auth", "auth_mode": "aad"}),
    ("traffic-integers", "PUT", "/v1/endpoints/ep-rules/traffic", {"blue": 50.5, "green": 49.5}),
    ("traffic-integers", "PUT", "/v1/endpoints/ep-rules/traffic", {"blue": "100"}),
    ("traffic-total", "PUT", "/v1/endpoints/ep-rules/traffic", {"blue": 90}),
    ("traffic-unknown-deployment", "PUT", "/v1/endpoints/ep-rules/traffic", {"nope": 100}),
    ("mirror-single", "PUT", "/v1/endpoints/ep-rules/mirror-traffic", {"green": 10, "red": 10}),
    ("mirror-max-50", "PUT", "/v1/endpoints/ep-rules/mirror-traffic", {"green": 60}),
    ("mirror-has-live-traffic", "PUT", "/v1/endpoints/ep-rules/mirror-traffic", {"blue": 10}),
    ("mirror-unknown-deployment", "PUT", "/v1/endpoints/ep-rules/mirror-traffic", {"nope": 10}),
    ("delete-live-traffic", "DELETE", "/v1/endpoints/ep-rules/deployments/blue", None),
    ("request-timeout", "PATCH", "/v1/endpoints/ep-rules/deployments/green",
     {"request_settings": {"request_timeout_ms": 180_001}}),
    ("instance-count", "PATCH", "/v1/endpoints/ep-rules/deployments/green", {"instance_count": 0}),
    ("probe", "PATCH", "/v1/endpoints/ep-rules/deployments/green",
     {"liveness_probe": {"period": 0}}),
    ("key-type", "POST", "/v1/endpoints/ep-rules/regenerate-keys", {"key_type": "tertiary"}),
]


@pytest.mark.parametrize("rule,method,path,body", RULE_CASES,
                         ids=[f"{case[0]}-{i}" for i, case in enumerate(RULE_CASES)])
def test_each_rule_refusal_is_a_400_naming_the_rule(admin: AdminServer, rule: str, method: str,
                                                     path: str, body: Any) -> None:
    if admin.call("GET", "/v1/endpoints/ep-rules").status_code == 404:
        make_endpoint(admin, "ep-rules", "blue", "green", "red")
        assert admin.call("PUT", "/v1/endpoints/ep-rules/traffic", {"blue": 100}).is_success
    before = admin.call("GET", "/v1/endpoints/ep-rules/deployments").json()
    answer = admin.call(method, path, body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["rule"] == rule
    assert answer.json()["message"]
    assert admin.call("GET", "/v1/endpoints/ep-rules/deployments").json() == before


def test_max_deployments_refusal(admin: AdminServer) -> None:
    make_endpoint(admin, "ep-many", *[f"d{i:02d}" for i in range(20)])
    answer = admin.call("POST", "/v1/endpoints/ep-many/deployments", {
        "name": "d20", "urls": ["http://127.0.0.1:9/score"]})
    assert answer.status_code == 400 and answer.json()["rule"] == "max-deployments"
    assert len(admin.call("GET", "/v1/endpoints/ep-many/deployments").json()) == 20


def test_stale_if_match_gets_412_and_a_current_one_passes(admin: AdminServer) -> None:
    make_endpoint(admin, "ep-etag", "blue", "green")
    first = etag(admin.call("GET", "/v1/endpoints/ep-etag"))
    moved = admin.call("PUT", "/v1/endpoints/ep-etag/traffic", {"blue": 100},
                       headers={"If-Match": first})
    assert moved.status_code == 200, moved.text
    for method, path, body in (("PUT", "/v1/endpoints/ep-etag/traffic", {"green": 100}),
                               ("PUT", "/v1/endpoints/ep-etag/mirror-traffic", {"green": 10}),
                               ("PATCH", "/v1/endpoints/ep-etag", {"description": "x"}),
                               ("DELETE", "/v1/endpoints/ep-etag", None)):
        stale = admin.call(method, path, body, headers={"If-Match": first})
        assert stale.status_code == 412, (path, stale.text)
        assert "message" in stale.json()
    assert admin.call("GET", "/v1/endpoints/ep-etag").json()["traffic"] == {"blue": 100, "green": 0}
    deployment = admin.call("GET", "/v1/endpoints/ep-etag/deployments/green")
    bumped = admin.call("PATCH", "/v1/endpoints/ep-etag/deployments/green", {"instance_count": 3},
                        headers={"If-Match": etag(deployment)})
    assert bumped.status_code == 200
    stale = admin.call("PATCH", "/v1/endpoints/ep-etag/deployments/green", {"instance_count": 4},
                       headers={"If-Match": etag(deployment)})
    assert stale.status_code == 412
    assert admin.call("DELETE", "/v1/endpoints/ep-etag/deployments/green",
                      headers={"If-Match": etag(deployment)}).status_code == 412
    assert admin.call("PATCH", "/v1/endpoints/ep-etag", {"description": "y"},
                      headers={"If-Match": "*"}).status_code == 200


def test_concurrent_updates_with_one_etag_and_without_lose_nothing(admin: AdminServer) -> None:
    make_endpoint(admin, "ep-race")
    base = etag(admin.call("GET", "/v1/endpoints/ep-race"))
    writers = 8
    results: dict[str, list[int]] = {"stale": [], "free": []}

    def write(i: int) -> None:
        stale = admin.call("PATCH", "/v1/endpoints/ep-race", {"tags": {f"s{i}": "x"}},
                           headers={"If-Match": base})
        free = admin.call("PATCH", "/v1/endpoints/ep-race", {"tags": {f"f{i}": "x"}})
        results["stale"].append(stale.status_code)
        results["free"].append(free.status_code)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results["stale"]).count(200) <= 1
    assert set(results["stale"]) <= {200, 412}
    assert results["free"] == [200] * writers
    tags = admin.call("GET", "/v1/endpoints/ep-race").json()["tags"]
    assert {f"f{i}" for i in range(writers)} <= tags.keys()  # every unconditioned write survived
    assert len([k for k in tags if k.startswith("s")]) == results["stale"].count(200)


def test_credentials_keys_tokens_and_regeneration(admin: AdminServer) -> None:
    from control_plane.store.sqlite_store import Store
    from gateway.auth import check_authorization
    from gateway.snapshot import EndpointRoute

    make_endpoint(admin, "ep-keys")
    keys = admin.call("POST", "/v1/endpoints/ep-keys/get-credentials").json()
    assert set(keys) == {"primaryKey", "secondaryKey"}
    regenerated = admin.call("POST", "/v1/endpoints/ep-keys/regenerate-keys",
                             {"key_type": "secondary"})
    assert regenerated.status_code == 200 and "snapshot_version" in regenerated.json()
    assert "Key" not in json.dumps(regenerated.json())  # no secret in the answer
    after = admin.call("POST", "/v1/endpoints/ep-keys/get-credentials").json()
    assert after["primaryKey"] == keys["primaryKey"]
    assert after["secondaryKey"] != keys["secondaryKey"]

    make_endpoint(admin, "ep-token", auth_mode="aml_token")
    token = admin.call("POST", "/v1/endpoints/ep-token/get-credentials").json()
    assert token["tokenType"] == "Bearer"
    assert token["refreshAfterTimeUtc"] < token["expiryTimeUtc"]
    store = Store(admin.home, (STORE_EXTENSION,))
    try:
        secret = store.secrets("ep-token").token_secret
    finally:
        store.close()
    route = EndpointRoute("ep-token", "aml_token", token_secret=secret)
    header = f"Bearer {token['accessToken']}".encode()
    assert check_authorization(route, header, now=token["refreshAfterTimeUtc"])
    assert not check_authorization(route, header, now=token["expiryTimeUtc"] + 1)
    assert not check_authorization(EndpointRoute("ep-other", "aml_token", token_secret=secret),
                                   header, now=token["refreshAfterTimeUtc"])


def test_logs_take_a_bounded_line_count(admin: AdminServer) -> None:
    make_endpoint(admin, "ep-logs", "blue")
    path = "/v1/endpoints/ep-logs/deployments/blue/logs"
    assert admin.call("GET", path, params={"lines": 3}).json()["logs"].splitlines() == [
        f"ep-logs/blue line {i}" for i in (9998, 9999, 10000)]
    assert len(admin.call("GET", path).json()["logs"].splitlines()) == 5000
    for bad in ("0", "-1", "abc", "100001"):
        answer = admin.call("GET", path, params={"lines": bad})
        assert answer.status_code == 400 and "lines" in answer.json()["message"]
    assert admin.call("GET", "/v1/endpoints/ep-logs/deployments/nope/logs").status_code == 404


@pytest.mark.parametrize("body,words", [
    (b"{not json", "not valid JSON"),
    (b"", "needs a JSON body"),
    (b"[1, 2]", "JSON object"),
    (json.dumps({"name": "ep-shape", "colour": "red"}), "unknown field 'colour'"),
    (json.dumps({"name": 7}), "'name' must be text"),
    (json.dumps({"description": "x"}), "needs the field 'name'"),
    (json.dumps({"name": "ep-shape", "tags": {"a": 1}}), "'tags.a' must be text"),
])
def test_bodies_of_the_wrong_shape_are_400_with_the_field(admin: AdminServer, body: bytes,
                                                          words: str) -> None:
    answer = admin.call("POST", "/v1/endpoints", body)
    assert answer.status_code == 400, answer.text
    assert words in answer.json()["message"]


def test_unknown_routes_and_methods_and_crashes_answer_json(admin: AdminServer) -> None:
    missing = admin.call("GET", "/v1/nothing")
    assert missing.status_code == 404 and "/openapi.json" in missing.json()["message"]
    wrong = admin.call("PUT", "/v1/endpoints")
    assert wrong.status_code == 405 and "PUT" in wrong.json()["message"]
    make_endpoint(admin, "ep-crash", "explode")
    crashed = admin.call("GET", "/v1/endpoints/ep-crash/deployments/explode/logs")
    assert crashed.status_code == 500
    assert crashed.headers["content-type"] == "application/json"
    assert "secret internal detail" not in crashed.text and "Traceback" not in crashed.text
    assert set(crashed.json()) == {"message"}


if __name__ == "__main__":
    serve_stand_in(Path(sys.argv[1]))


def test_deployment_writes_report_their_provisioning_state(admin: AdminServer) -> None:
    make_endpoint(admin, "ep-prov", "blue")
    body = {"name": "green", "code_dir": str(admin.code_dir), "scoring_script": "score.py"}
    bad = admin.call("POST", "/v1/endpoints/ep-prov/deployments?wait=maybe", body)
    assert bad.status_code == 400 and "wait" in bad.json()["message"]
    created = admin.call("POST", "/v1/endpoints/ep-prov/deployments?wait=true", body)
    assert created.status_code == 201 and created.json()["provisioning_state"] == "Succeeded"
    assert "provisioning_message" not in created.json()
    listed = admin.call("GET", "/v1/endpoints/ep-prov/deployments").json()
    assert {d["name"]: d["provisioning_state"] for d in listed} == {
        "blue": "Succeeded", "green": "Succeeded"}
    patched = admin.call("PATCH", "/v1/endpoints/ep-prov/deployments/green?wait=false",
                         {"instance_count": 2})
    # the stand-in runtime ends every operation at once, so the answer is read after the end
    assert patched.status_code == 200 and patched.json()["provisioning_state"] == "Succeeded"
    deleted = admin.call("DELETE", "/v1/endpoints/ep-prov/deployments/green?wait=false")
    assert deleted.status_code == 200 and deleted.json()["message"].startswith("deleting")
    assert admin.call("GET", "/v1/endpoints/ep-prov/deployments/green").status_code == 404
