"""The azureml.contrib.services stand-ins (request object, AMLResponse, aliases) and CORS, in
process; and a server whose environment has its own `azureml.contrib.services` (as with
Microsoft's package installed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scoring_servers.azureml.contrib_services.aml_request import (
    AMLRequest,
    RequestInputError,
    RequestKeyError,
)
from scoring_servers.azureml.contrib_services.aml_response import AMLResponse
from scoring_servers.azureml.cors import CorsPolicy
from scoring_servers.azureml.results import client_error, result_outcome
from tests.scoring_servers.server_helpers import start_server, write_script
from tests.support.processes import REPO_ROOT, ProcessGroup


def _request(body: bytes = b"", content_type: str | None = None,
             query: bytes = b"") -> AMLRequest:
    headers = [("Host", "h.example:5001")]
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    return AMLRequest("POST", "/score", query, headers, body)


def test_request_reads_like_werkzeugs() -> None:
    request = _request(b"a=1&a=2&b=", "application/x-www-form-urlencoded", b"x=1&x=2&y=%20z")
    assert request.args["x"] == "1" and request.args.getlist("x") == ["1", "2"]
    assert request.args.get("y") == " z" and request.args.get("n", 5, type=int) == 5
    assert request.form.getlist("a") == ["1", "2"] and request.form["b"] == ""
    assert request.url == "http://h.example:5001/score?x=1&x=2&y=%20z"
    assert request.full_path == "/score?x=1&x=2&y=%20z"
    assert request.headers["host"] == "h.example:5001"
    assert dict(request.headers) == {"Host": "h.example:5001",
                                     "Content-Type": "application/x-www-form-urlencoded"}
    assert request.environ["HTTP_HOST"] == "h.example:5001"
    assert request.environ["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    with pytest.raises(KeyError):
        request.args["missing"]


def test_get_json_follows_werkzeugs_rules() -> None:
    assert _request(b'{"a": 1}', "application/json").get_json() == {"a": 1}
    assert _request(b'{"a": 1}', "application/vnd.api+json; charset=utf-8").json == {"a": 1}
    assert _request(b'{"a": 1}', "text/plain").get_json(force=True) == {"a": 1}
    assert _request(b"{bad", "application/json").get_json(silent=True) is None
    with pytest.raises(RequestInputError) as not_json:
        _request(b"{}", "text/plain").get_json()
    with pytest.raises(RequestInputError) as bad:
        _request(b"{bad", "application/json").get_json()
    assert (not_json.value.status, bad.value.status) == (415, 400)


def test_request_errors_escaping_run_are_the_clients() -> None:
    assert client_error(RequestKeyError("k"), None) == (
        400, "The browser (or proxy) sent a request that this server could not understand. "
             "KeyError: 'k'")
    assert client_error(ValueError("the script's"), None) is None


def test_aml_response_is_built_as_azmlinfsrvs() -> None:
    text = AMLResponse("hé", 200)
    assert (text.data, text.headers) == ("hé".encode(), [
        ("Content-Type", "text/html; charset=utf-8"), ("x-ms-run-function-failed", "False")])
    typed = AMLResponse(b"\x00", 201, {"Content-Type": "image/png", "X-A": "1, 2"})
    assert typed.headers == [("x-ms-run-function-failed", "False"),
                             ("Content-Type", "image/png"), ("X-A", "1"), ("X-A", "2")]
    assert AMLResponse(None, 204).data == b"{}"
    assert AMLResponse([1, "a"], 200, json_str=True).data == b'[1, "a"]'


def test_aml_response_outcome_passes_through_and_refuses_bad_headers() -> None:
    outcome = result_outcome(AMLResponse("x", 500, {"X-A": "b"}), 1.0, "id")
    assert outcome.status == 500
    assert (b"x-ms-run-function-failed", b"True") in outcome.headers
    assert (b"X-A", b"b") in outcome.headers
    bad = result_outcome(AMLResponse("x", 200, {"X-A": "line\nbreak"}), 1.0, "id")
    assert bad.status == 500
    assert "invalid HTTP header" in json.loads(bad.body)["message"]


def _cors(origins: str, method: str = "GET", **headers: str) -> dict[str, str]:
    policy = CorsPolicy.parse(origins)
    assert policy is not None
    raw = [(name.replace("_", "-").lower().encode(), value.encode())
           for name, value in headers.items()]
    return {name.decode(): value.decode() for name, value in policy.headers(method, raw)}


def test_cors_follows_flask_cors() -> None:
    assert CorsPolicy.parse("  ") is None
    assert _cors("https://a.example", origin="https://A.example") == {
        "Access-Control-Allow-Origin": "https://A.example"}
    assert _cors("https://a.example", origin="https://b.example") == {}
    assert _cors("https://b.example, https://a.example") == {
        "Access-Control-Allow-Origin": "https://a.example", "Vary": "Origin"}
    assert _cors("*") == {"Access-Control-Allow-Origin": "*"}
    assert _cors("*", origin="https://x.example") == {
        "Access-Control-Allow-Origin": "https://x.example", "Vary": "Origin"}
    assert _cors(r"https://.*\.example", origin="https://sub.example")[
        "Access-Control-Allow-Origin"] == "https://sub.example"
    preflight = _cors("https://a.example", "OPTIONS", origin="https://a.example",
                      access_control_request_method="post",
                      access_control_request_headers="X-B, content-type")
    assert preflight["Access-Control-Allow-Methods"] == "GET, POST"
    assert preflight["Access-Control-Allow-Headers"] == "X-B, content-type"
    assert "Access-Control-Allow-Methods" not in _cors(
        "https://a.example", "OPTIONS", origin="https://a.example",
        access_control_request_method="PUT")


# A stand-in for Microsoft's package: its own azureml.contrib.services modules, whose rawhttp
# sets its own flag and whose AMLResponse is a werkzeug-like Response.
FOREIGN_REQUEST = """
_rawHttpRequested = False

def rawhttp(func):
    global _rawHttpRequested
    _rawHttpRequested = True
    return func

class AMLRequest:
    pass
"""
FOREIGN_RESPONSE = """
class _Headers:
    def __init__(self, pairs):
        self._pairs = pairs

    def items(self):
        return list(self._pairs)

class AMLResponse:
    def __init__(self, message, status_code, response_headers={}, json_str=False):
        self.status_code = status_code
        self.headers = _Headers([("Content-Type", "text/plain"), ("x-foreign", "yes")])
        self._data = message.encode()

    def get_data(self):
        return self._data
"""
FOREIGN_SCRIPT = """
    from azureml.contrib.services.aml_request import rawhttp
    from azureml.contrib.services.aml_response import AMLResponse
    import azureml.contrib.services.aml_request as request_module

    def init():
        assert "scoring_servers" not in request_module.__file__, "the installed module is used"

    @rawhttp
    def run(request):
        return AMLResponse(request.method + " " + request.get_data(as_text=True),
                           int(request.args.get("status", "200")))
"""


def test_installed_azureml_contrib_services_is_used_and_recognised(
        processes: ProcessGroup, tmp_path: Path) -> None:
    package = tmp_path / "site" / "azureml" / "contrib" / "services"
    package.mkdir(parents=True)
    for folder in (package, package.parent, package.parent.parent):
        (folder / "__init__.py").write_text("")
    (package / "aml_request.py").write_text(FOREIGN_REQUEST)
    (package / "aml_response.py").write_text(FOREIGN_RESPONSE)
    server = start_server(processes, write_script(tmp_path / "code", FOREIGN_SCRIPT),
                          {"PYTHONPATH": f"{REPO_ROOT}:{tmp_path / 'site'}"})
    ok = server.score("hello")
    failed = server.request("POST", "/score?status=502", b"x")
    assert (ok.status, ok.body, ok.headers["x-foreign"]) == (200, b"POST hello", "yes")
    assert ok.headers["content-type"] == "text/plain"
    assert failed.status == 502
    assert failed.headers["x-ms-run-function-failed"] == "True"


BROKEN_RESULT_SCRIPT = """
    class Broken:
        status_code = 200
        headers = {}

        def get_data(self):
            raise RuntimeError("cannot render")

    def init():
        pass

    def run(raw_data):
        return Broken() if raw_data == "broken" else "fine"
"""


def test_a_result_that_cannot_be_rendered_is_500_and_the_worker_survives(
        processes: ProcessGroup, tmp_path: Path) -> None:
    server = start_server(processes, write_script(tmp_path / "code", BROKEN_RESULT_SCRIPT))
    broken = server.score("broken")
    assert broken.status == 500
    assert broken.headers["x-ms-run-function-failed"] == "True"
    assert server.score("ok").body == b'"fine"'  # WORKER_COUNT=1: the only thread still runs
