"""The same scripts and requests against scoregate's server and Microsoft's azmlinfsrv 1.5.1:
statuses, bodies and azmlinfsrv's own headers must match, except the differences
docs/scoring-server.md lists (asserted here as such).

azmlinfsrv runs from its own virtualenv: `SCOREGATE_AZMLINFSRV` names its python, else the
scoring-server benchmark's `.venv-azmlinfsrv` is used when it exists (created by
`python benchmarks/scoring_server/run.py`), else the test builds one with uv in its own temporary
folder (about 6 s from a cold cache; PyPI must be reachable, or the test is skipped saying so).
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.scoring_servers.server_helpers import Reply, start_server, write_script
from tests.scoring_servers.test_dropin import (
    HEADERS_SCRIPT,
    RAW_SCRIPT,
    SCHEMA_SCRIPT,
    UPLOAD,
    UPLOAD_TYPE,
)
from tests.support.processes import REPO_ROOT, ProcessGroup, free_port, http_ok, wait_until

BENCH_VENV_PYTHON = (REPO_ROOT / "benchmarks" / "scoring_server" / ".venv-azmlinfsrv" / "bin"
                     / "python")
# azmlinfsrv always binds 0.0.0.0; make it bind loopback, like everything here.
LAUNCHER = (
    "import sys; import azureml_inference_server_http.constants as c; "
    "c.DEFAULT_HOST = '127.0.0.1'; from azureml_inference_server_http.amlserver import run; "
    "sys.argv[0] = 'azmlinfsrv'; sys.exit(run())")
# The headers azmlinfsrv adds itself (not gunicorn's Server/Date/Connection).
COMPARED_HEADERS = ("content-type", "x-ms-run-function-failed", "x-request-id", "x-ms-request-id",
                    "x-ms-client-request-id", "traceid", "access-control-allow-origin",
                    "vary", "access-control-allow-methods", "access-control-allow-headers")
ID = {"x-request-id": "fixed-id"}
JSON_TYPE = {"Content-Type": "application/json", **ID}


def azmlinfsrv_python(folder: Path) -> str:
    given = os.environ.get("SCOREGATE_AZMLINFSRV")
    python = given or (str(BENCH_VENV_PYTHON) if BENCH_VENV_PYTHON.exists() else "")
    if not python:
        python = _build_venv(folder)
    probe = subprocess.run([python, "-c", "import azureml_inference_server_http, inference_schema"],
                           capture_output=True, timeout=120, check=False)
    if probe.returncode != 0:
        pytest.skip(f"{python} cannot import azureml_inference_server_http and inference_schema")
    return python


class Pair:
    """One script served by both servers."""

    def __init__(self, group: ProcessGroup, code_dir: Path, python: str,
                 env: Mapping[str, str] | None = None) -> None:
        self.ours = start_server(group, code_dir, env)
        port = free_port()
        started = group.start([python, "-c", LAUNCHER, "--entry_script",
                               str(code_dir / "score.py"), "--port", str(port)],
                              env=env, cwd=code_dir, name="azmlinfsrv")
        self.theirs_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_ok(self.theirs_url + "/") or started.proc.poll() is not None,
                   90, what="azmlinfsrv to answer")
        assert started.proc.poll() is None, started.log()

    def both(self, method: str, path: str, body: bytes | None = None,
             headers: Mapping[str, str] | None = None) -> tuple[Reply, Reply]:
        return (self.ours.request(method, path, body, headers),
                _request(self.theirs_url, method, path, body, headers))


def _request(url: str, method: str, path: str, body: bytes | None,
             headers: Mapping[str, str] | None) -> Reply:
    request = urllib.request.Request(url + path, data=body, method=method,
                                     headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Reply(response.status, {k.lower(): v for k, v in response.headers.items()},
                         response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


def assert_same(ours: Reply, theirs: Reply, *, body: bool = True) -> None:
    assert ours.status == theirs.status, (ours, theirs)
    if body:
        assert ours.body == theirs.body, (ours.body, theirs.body)
    for name in COMPARED_HEADERS:
        if name in ("x-request-id", "x-ms-request-id") and "x-request-id" not in ID:
            continue
        assert ours.headers.get(name) == theirs.headers.get(name), (name, ours, theirs)
    # werkzeug lists Allow from a set: its order changes from one process to the next.
    assert _methods(ours.headers.get("allow")) == _methods(theirs.headers.get("allow"))
    assert ("x-ms-run-fn-exec-ms" in ours.headers) == ("x-ms-run-fn-exec-ms" in theirs.headers)
    assert "x-ms-server-version" in ours.headers


def _methods(allow: str | None) -> set[str]:
    return {method.strip() for method in (allow or "").split(",") if method.strip()}


def _build_venv(folder: Path) -> str:
    """azmlinfsrv 1.5.1 in a virtualenv of its own, built by uv (a scoregate dependency)."""
    import uv

    uv_bin = uv.find_uv_bin()
    venv = folder / "azmlinfsrv"
    env = {**os.environ, "UV_CACHE_DIR": str(folder / "uv-cache"), "UV_PYTHON_DOWNLOADS": "never"}
    for argv in ([uv_bin, "venv", "--quiet", "--python", sys.executable, str(venv)],
                 [uv_bin, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
                  "azureml-inference-server-http==1.5.1", "inference-schema", "numpy", "pandas"]):
        built = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300,
                               check=False)
        if built.returncode != 0:
            pytest.skip(f"could not build azmlinfsrv's virtualenv: {built.stderr.strip()[-300:]}")
    return str(venv / "bin" / "python")


@pytest.fixture(scope="module")
def python(tmp_path_factory: pytest.TempPathFactory) -> str:
    return azmlinfsrv_python(tmp_path_factory.mktemp("azmlinfsrv"))


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessGroup]:
    with ProcessGroup(tmp_path_factory.mktemp("compare-logs")) as processes:
        yield processes


PLAIN_SCRIPT = """
    def init():
        pass

    def run(raw_data):
        if raw_data == "set":
            return {1, 2}
        if raw_data == "none":
            return None
        if raw_data == "raise":
            raise RuntimeError("the script's failure")
        return raw_data
"""


@pytest.mark.slow
def test_plain_script_answers_alike(python: str, group: ProcessGroup, tmp_path: Path) -> None:
    pair = Pair(group, write_script(tmp_path / "plain", PLAIN_SCRIPT), python)
    text = {"Content-Type": "text/plain", **ID}
    for request in [
        ("POST", "/score", b"text", text),
        ("POST", "/score", b"none", text),
        ("POST", "/score", b"set", text),
        ("POST", "/score", b"raise", text),
        ("POST", "/score", b"caf\xc3\xa9\xff", text),
        ("POST", "/score", b'{"a": 1}', JSON_TYPE),
        ("GET", "/score?a=1&a=x&b=[1,2]&c", None, ID),
        ("GET", "/score", None, ID),
        ("GET", "//score?a=1", None, ID),
        ("GET", "/score/", None, ID),
        ("DELETE", "/", None, ID),
        ("POST", "/swagger.json", b"", ID),
        ("GET", "/swagger.json?version=3&version=2", None, ID),
        ("GET", "/swagger.json?version=3.1", None, ID),
        ("GET", "/", None, {"x-request-id": "r" * 101}),
    ]:
        ours, theirs = pair.both(*request)
        assert_same(ours, theirs)
    # On purpose: a form Content-Type (urllib's and curl -d's default) does not empty the body;
    # werkzeug parses it as a form, so azmlinfsrv's run() gets "".
    form = {"Content-Type": "application/x-www-form-urlencoded", **ID}
    ours, theirs = pair.both("POST", "/score", b'{"a": 1}', form)
    assert (ours.body, theirs.body) == (b'"{\\"a\\": 1}"', b'""')


@pytest.mark.slow
def test_schema_script_answers_alike(python: str, group: ProcessGroup, tmp_path: Path) -> None:
    pytest.importorskip("inference_schema")
    pair = Pair(group, write_script(tmp_path / "schema", SCHEMA_SCRIPT), python)
    for request in [
        ("POST", "/score", b'{"data": [[1, 2]], "scale": 2}', JSON_TYPE),
        ("POST", "/score", b'{"scale": 1}', JSON_TYPE),
        ("POST", "/score", b"[1, 2]", JSON_TYPE),
        ("POST", "/score", b"", JSON_TYPE),
        ("POST", "/score", b"{bad", JSON_TYPE),
        ("POST", "/score", b'{"data": [[1, 2]]}', {"Content-Type": "text/plain", **ID}),
        ("POST", "/score", b'{"data": [[1, 2]], "scale": -1}', JSON_TYPE),
        ("GET", "/score?data=[[1,1]]&scale=0.5", None, ID),
        ("OPTIONS", "/score", None, ID),
        ("GET", "/", None, {"x-ms-request-id": "legacy", "TraceId": "t", **ID}),
        ("GET", "/", None, {"x-ms-client-request-id": "c" * 101, **ID}),
        ("GET", "/swagger.json?version=9", None, ID),
        ("PUT", "/score", b"x", ID),
        ("GET", "/nowhere", None, ID),
    ]:
        ours, theirs = pair.both(*request)
        assert_same(ours, theirs)
    for version in ("2", "3", "3.1"):
        ours, theirs = pair.both("GET", f"/swagger.json?version={version}", None, ID)
        assert_same(ours, theirs)
    # On purpose: a value of the wrong type is the client's mistake (azmlinfsrv: 500).
    ours, theirs = pair.both("POST", "/score", b'{"data": [[1, 2]], "scale": "big"}', JSON_TYPE)
    assert (ours.status, theirs.status) == (400, 500)
    assert theirs.headers["x-ms-run-function-failed"] == "True"


@pytest.mark.slow
def test_rawhttp_script_answers_alike(python: str, group: ProcessGroup, tmp_path: Path) -> None:
    pair = Pair(group, write_script(tmp_path / "raw", RAW_SCRIPT), python)
    for request in [
        ("POST", "/score?kind=json", b'{"z": 1}', JSON_TYPE),
        ("POST", "/score?kind=response", b"", ID),
        ("POST", "/score?kind=json-response", b"", ID),
        ("POST", "/score?kind=failing-response", b"", ID),
        ("POST", "/score?kind=bytes", b"", ID),
        ("POST", "/score?kind=explode", b"", ID),
        ("POST", "/score?kind=upload", UPLOAD, {**UPLOAD_TYPE, **ID}),
        ("POST", "/score?kind=upload", b"a=1&a=2&b=%20",
         {"Content-Type": "application/x-www-form-urlencoded", **ID}),
    ]:
        ours, theirs = pair.both(*request)
        assert_same(ours, theirs)
    ours, theirs = pair.both("POST", "/score?kind=info&a=1&a=2", b"hello",
                             {"X-Thing": "yes", "Content-Type": "text/plain", **ID})
    assert ours.status == theirs.status == 200
    theirs_info = theirs.json()
    theirs_info["is_aml_request"] = True  # theirs is a flask Request subclass
    assert ours.json() == theirs_info
    # On purpose: get_json() on a non-JSON body raises werkzeug's 415 inside run();
    # azmlinfsrv answers 500, we answer the 415.
    ours, theirs = pair.both("POST", "/score?kind=json", b"{}", {"Content-Type": "text/plain"})
    assert (ours.status, theirs.status) == (415, 500)


@pytest.mark.slow
def test_headers_script_and_cors_answer_alike(python: str, group: ProcessGroup,
                                              tmp_path: Path) -> None:
    pair = Pair(group, write_script(tmp_path / "headers", HEADERS_SCRIPT), python,
                {"AML_CORS_ORIGINS": "https://a.example, https://b.example"})
    for request in [
        ("POST", "/score", b"{}", {"Origin": "https://a.example", **ID}),
        ("POST", "/score", b"{}", {"Origin": "https://evil.example", **ID}),
        ("POST", "/score", b"{}", ID),
        ("OPTIONS", "/score", None, {"Origin": "https://b.example", **ID,
                                     "Access-Control-Request-Method": "POST",
                                     "Access-Control-Request-Headers": "x-foo, content-type"}),
        ("HEAD", "/score", None, ID),
        ("HEAD", "/", None, ID),
        ("OPTIONS", "/", None, ID),
    ]:
        ours, theirs = pair.both(*request)
        # The body echoes the Host header, whose port differs.
        assert_same(ours, theirs, body=request[0] != "POST")
        if request[0] == "POST":
            ours_headers, theirs_headers = ours.json()["headers"], theirs.json()["headers"]
            ours_headers.pop("Host"), theirs_headers.pop("Host")
            assert ours_headers == theirs_headers
