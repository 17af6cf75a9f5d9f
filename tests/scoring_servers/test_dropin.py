"""azmlinfsrv's script contract beyond `run(raw_data)`: inference_schema-decorated run(),
`@rawhttp` with AMLResponse, `run(data, request_headers)`; its headers, CORS and flags."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scoring_servers.server_helpers import (
    ScoringServer,
    server_args,
    start_server,
    wait_ready,
    write_script,
)
from tests.support.processes import ProcessGroup, wait_until

RUN_FAILED = "An unexpected error occurred in scoring script. Check the logs for more info."

SCHEMA_SCRIPT = """
    import numpy as np
    from inference_schema.schema_decorators import input_schema, output_schema
    from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
    from inference_schema.parameter_types.standard_py_parameter_type import (
        StandardPythonParameterType)

    def init():
        pass

    @input_schema("data", NumpyParameterType(np.array([[1.0, 2.0]])))
    @input_schema("scale", StandardPythonParameterType(2.0))
    @output_schema(StandardPythonParameterType({"total": 1.0, "kind": "ndarray"}))
    def run(data, scale=3.0):
        if scale < 0:
            raise ValueError("the script's own failure")
        return {"total": float(data.sum() * scale), "kind": type(data).__name__}
"""

RAW_SCRIPT = """
    from azureml.contrib.services.aml_request import AMLRequest, rawhttp
    from azureml.contrib.services.aml_response import AMLResponse

    def init():
        pass

    @rawhttp
    def run(request):
        kind = request.args.get("kind", "info")
        if kind == "info":
            return {"method": request.method, "args": request.args.to_dict(flat=False),
                    "full_path": request.full_path, "path": request.path,
                    "data": request.get_data(as_text=True), "is_json": request.is_json,
                    "thing": request.headers.get("x-thing"),
                    "is_aml_request": isinstance(request, AMLRequest)}
        if kind == "json":
            return request.get_json()
        if kind == "upload":
            return {"form": request.form.to_dict(flat=False),
                    "files": {name: [f.filename, f.mimetype, f.read().hex()]
                              for name, f in request.files.items()}}
        if kind == "response":
            return AMLResponse("made <b>it</b>", 201, {"X-Custom": "a, b",
                                                       "Content-Type": "text/plain"})
        if kind == "json-response":
            return AMLResponse({"x": [1, 2]}, 202, json_str=True)
        if kind == "failing-response":
            return AMLResponse("boom", 503)
        if kind == "bytes":
            return AMLResponse(b"\\x00\\x01", 200, {"Content-Type": "application/octet-stream"})
        raise ValueError(kind)
"""

HEADERS_SCRIPT = """
    def init():
        pass

    def run(data, request_headers):
        return {"data": data, "headers": request_headers}
"""


@pytest.fixture(scope="module")
def schema_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScoringServer]:
    pytest.importorskip("inference_schema", reason="inference-schema is in the test extra")
    root = tmp_path_factory.mktemp("schema")
    with ProcessGroup(root / "logs") as group:
        yield start_server(group, write_script(root / "code", SCHEMA_SCRIPT))


@pytest.fixture(scope="module")
def raw_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScoringServer]:
    root = tmp_path_factory.mktemp("raw")
    with ProcessGroup(root / "logs") as group:
        yield start_server(group, write_script(root / "code", RAW_SCRIPT))


JSON_TYPE = {"Content-Type": "application/json"}


# -- inference_schema ------------------------------------------------------------------------
def test_schema_body_keys_become_converted_arguments(schema_server: ScoringServer) -> None:
    reply = schema_server.score('{"data": [[1, 2]], "scale": 2}', JSON_TYPE)
    assert (reply.status, reply.json()) == (200, {"total": 6.0, "kind": "ndarray"})
    default = schema_server.score('{"data": [[1, 2]]}', JSON_TYPE)
    assert default.json() == {"total": 9.0, "kind": "ndarray"}  # run()'s own default


def test_schema_get_maps_query_parameters(schema_server: ScoringServer) -> None:
    reply = schema_server.request("GET", "/score?data=[[1,1]]&scale=0.5")
    assert (reply.status, reply.json()) == (200, {"total": 1.0, "kind": "ndarray"})


@pytest.mark.parametrize(("body", "headers", "status", "message"), [
    ('{"scale": 1}', JSON_TYPE, 400, "A value is not provided for the 'data' parameter."),
    ("[1, 2]", JSON_TYPE, 400, "POST body should be a JSON dictionary."),
    ("", JSON_TYPE, 400, "POST body is empty. Expecting a JSON dictionary."),
    ('{"data": [[1, 2]]}', {"Content-Type": "text/plain"}, 415,
     "Expects Content-Type to be application/json"),
    ('{"data": [[1, 2]]}', {}, 415, "Expects Content-Type to be application/json"),
])
def test_schema_input_errors_are_azmlinfsrvs(schema_server: ScoringServer, body: str,
                                             headers: dict[str, str], status: int,
                                             message: str) -> None:
    reply = schema_server.score(body, headers)
    assert (reply.status, reply.json()) == (status, {"message": message})
    assert reply.headers["x-ms-run-function-failed"] == "False"


def test_schema_bad_json_is_400(schema_server: ScoringServer) -> None:
    reply = schema_server.score("{bad", JSON_TYPE)
    assert reply.status == 400
    assert reply.json()["message"].startswith("POST body could not be decoded as JSON: ")


def test_schema_wrong_type_is_a_400_not_the_scripts_failure(schema_server: ScoringServer) -> None:
    reply = schema_server.score('{"data": [[1, 2]], "scale": "big"}', JSON_TYPE)
    assert reply.status == 400
    assert reply.json()["message"].startswith("Invalid input for run(): ValueError: ")
    assert reply.headers["x-ms-run-function-failed"] == "False"


def test_schema_scripts_own_failure_is_500(schema_server: ScoringServer) -> None:
    reply = schema_server.score('{"data": [[1, 2]], "scale": -1}', JSON_TYPE)
    assert (reply.status, reply.json()) == (500, {"message": RUN_FAILED})
    assert reply.headers["x-ms-run-function-failed"] == "True"


def test_swagger_is_generated_from_the_decorators(schema_server: ScoringServer) -> None:
    v2 = schema_server.request("GET", "/swagger.json").json()
    v3 = schema_server.request("GET", "/swagger.json?version=3").json()
    assert v2["swagger"] == "2.0" and v3["openapi"] == "3.0.3"
    service_input = v2["definitions"]["ServiceInput"]
    assert set(service_input["properties"]) == {"data", "scale"}
    assert service_input["example"]["scale"] == 2.0
    assert v3["components"]["schemas"]["ServiceInput"] == service_input
    assert v2["definitions"]["ServiceOutput"]["properties"]["total"]["type"] == "number"
    assert v2["paths"]["/score"]["post"]["parameters"][0]["schema"] == {
        "$ref": "#/definitions/ServiceInput"}


# -- @rawhttp --------------------------------------------------------------------------------
def test_rawhttp_run_gets_the_request(raw_server: ScoringServer) -> None:
    reply = raw_server.request("POST", "/score?kind=info&a=1&a=2", b"hello",
                               {"X-Thing": "yes", "Content-Type": "text/plain"})
    assert reply.status == 200
    assert reply.json() == {
        "method": "POST", "args": {"kind": ["info"], "a": ["1", "2"]},
        "full_path": "/score?kind=info&a=1&a=2", "path": "/score", "data": "hello",
        "is_json": False, "thing": "yes", "is_aml_request": True}


def test_rawhttp_run_gets_every_method(raw_server: ScoringServer) -> None:
    for method in ("OPTIONS", "GET"):
        reply = raw_server.request(method, "/score?kind=info")
        assert reply.json()["method"] == method


UPLOAD = (b"--XyZ\r\nContent-Disposition: form-data; name=\"field\"\r\n\r\nvalue \xc3\xa9\r\n"
          b"--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
          b"Content-Type: image/png\r\n\r\n\x89PNG\r\n\x00\x01\r\n--XyZ--\r\n")
UPLOAD_TYPE = {"Content-Type": "multipart/form-data; boundary=XyZ"}


def test_rawhttp_multipart_upload(raw_server: ScoringServer) -> None:
    reply = raw_server.request("POST", "/score?kind=upload", UPLOAD, UPLOAD_TYPE)
    assert (reply.status, reply.json()) == (200, {
        "form": {"field": ["value é"]},
        "files": {"image": ["a.png", "image/png", b"\x89PNG\r\n\x00\x01".hex()]}})


def test_rawhttp_get_json(raw_server: ScoringServer) -> None:
    ok = raw_server.request("POST", "/score?kind=json", b'{"z": 1}', JSON_TYPE)
    wrong_type = raw_server.request("POST", "/score?kind=json", b'{"z": 1}',
                                    {"Content-Type": "text/plain"})
    bad = raw_server.request("POST", "/score?kind=json", b"{bad", JSON_TYPE)
    assert (ok.status, ok.json()) == (200, {"z": 1})
    assert wrong_type.status == 415
    assert "Content-Type was not 'application/json'" in wrong_type.json()["message"]
    assert bad.status == 400
    assert bad.json()["message"].startswith("Failed to decode JSON object")


def test_aml_response_is_passed_through(raw_server: ScoringServer) -> None:
    reply = raw_server.request("POST", "/score?kind=response", b"")
    assert (reply.status, reply.body) == (201, b"made <b>it</b>")
    assert reply.headers["content-type"] == "text/plain"
    assert _header_values(raw_server, "/score?kind=response", "x-custom") == ["a", "b"]
    assert reply.headers["x-ms-run-function-failed"] == "False"
    as_json = raw_server.request("POST", "/score?kind=json-response", b"")
    assert (as_json.status, as_json.body) == (202, b'{"x": [1, 2]}')
    assert as_json.headers["content-type"] == "application/json"
    raw = raw_server.request("POST", "/score?kind=bytes", b"")
    assert (raw.body, raw.headers["content-type"]) == (b"\x00\x01", "application/octet-stream")


def _header_values(server: ScoringServer, path: str, name: str) -> list[str]:
    """Every value of a repeated response header (Reply.headers keeps one)."""
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("POST", path, body=b"")
        response = connection.getresponse()
        response.read()
        return [value for key, value in response.getheaders() if key.lower() == name]
    finally:
        connection.close()


def test_5xx_aml_response_marks_the_run_failed(raw_server: ScoringServer) -> None:
    reply = raw_server.request("POST", "/score?kind=failing-response", b"")
    assert (reply.status, reply.body) == (503, b"boom")
    assert reply.headers["x-ms-run-function-failed"] == "True"


def test_rawhttp_run_raising_is_500(raw_server: ScoringServer) -> None:
    reply = raw_server.request("POST", "/score?kind=explode", b"")
    assert (reply.status, reply.json()) == (500, {"message": RUN_FAILED})
    assert reply.headers["x-ms-run-function-failed"] == "True"


# -- run(data, request_headers) ----------------------------------------------------------------
def test_request_headers_parameter_gets_the_headers(processes: ProcessGroup,
                                                    code_dir: Path) -> None:
    server = start_server(processes, write_script(code_dir, HEADERS_SCRIPT))
    reply = server.score('{"a": 1}', {"Content-Type": "application/json", "x-custom-thing": "v1",
                                      "my_under": "dropped, as gunicorn does"})
    assert reply.status == 200
    result = reply.json()
    assert result["data"] == '{"a": 1}'
    headers = result["headers"]
    assert headers["X-Custom-Thing"] == "v1"
    assert headers["Content-Type"] == "application/json"
    assert headers["Content-Length"] == "8"
    assert "My_Under" not in headers and "My-Under" not in headers


# -- headers on every answer -------------------------------------------------------------------
def test_ids_server_version_and_trace_id(raw_server: ScoringServer) -> None:
    legacy = raw_server.request("GET", "/", headers={"x-ms-request-id": "legacy-1",
                                                     "TraceId": "t-9"})
    assert legacy.headers["x-ms-request-id"] == "legacy-1"
    assert legacy.headers["x-ms-client-request-id"] == "legacy-1"
    assert legacy.headers["traceid"] == "t-9"
    assert legacy.headers["x-ms-server-version"].startswith("scoregate-scoring-server/")
    fresh = raw_server.request("POST", "/score?kind=json", b"{}", JSON_TYPE)
    assert fresh.headers["x-ms-request-id"] == fresh.headers["x-request-id"]
    assert "x-ms-client-request-id" not in fresh.headers
    too_long = raw_server.request("GET", "/", headers={"x-ms-client-request-id": "c" * 101})
    assert too_long.status == 431
    assert too_long.json() == {
        "message": "x-ms-request-id and x-ms-client-request-id must not exceed 100 characters"}


def test_head_and_options(raw_server: ScoringServer) -> None:
    head = raw_server.request("HEAD", "/")
    options = raw_server.request("OPTIONS", "/")
    assert (head.status, head.body, head.headers["content-length"]) == (200, b"", "7")
    assert (options.status, options.headers["allow"]) == (200, "OPTIONS, HEAD, GET")


def test_options_on_score_of_a_plain_script(processes: ProcessGroup, code_dir: Path) -> None:
    server = start_server(processes, write_script(code_dir, HEADERS_SCRIPT))
    options = server.request("OPTIONS", "/score")
    head = server.request("HEAD", "/score")
    assert (options.status, options.body) == (200, b"")
    assert head.status == 405


def test_cors_from_environment(processes: ProcessGroup, code_dir: Path) -> None:
    server = start_server(processes, write_script(code_dir, HEADERS_SCRIPT),
                          {"AML_CORS_ORIGINS": "https://a.example, https://b.example"})
    allowed = server.score("{}", {"Origin": "https://a.example"})
    refused = server.score("{}", {"Origin": "https://evil.example"})
    preflight = server.request("OPTIONS", "/score", headers={
        "Origin": "https://b.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-foo, content-type"})
    assert allowed.headers["access-control-allow-origin"] == "https://a.example"
    assert allowed.headers["vary"] == "Origin"
    assert "access-control-allow-origin" not in refused.headers
    assert preflight.status == 200
    assert preflight.headers["access-control-allow-origin"] == "https://b.example"
    assert preflight.headers["access-control-allow-methods"] == "GET, POST"
    assert preflight.headers["access-control-allow-headers"] == "content-type, x-foo"


# -- azmlinfsrv's command line -----------------------------------------------------------------
def test_azmlinfsrv_flags(processes: ProcessGroup, tmp_path: Path, code_dir: Path) -> None:
    write_script(code_dir, """
        import os

        def init():
            pass

        def run(raw_data):
            return {name: os.environ.get(name) for name in
                    ("AZUREML_MODEL_DIR", "WORKER_COUNT", "AZUREML_ENTRY_SCRIPT")}
    """)
    started = processes.python(
        "-m", "scoring_servers.azureml", "--entry_script", "code/score.py",
        "--model_dir", "models", "--worker_count", "2", "--port", "0",
        "--access_control_allow_origins", "*", "--appinsights_instrumentation_key", "k",
        cwd=tmp_path)
    server = ScoringServer(started, wait_ready(started))
    reply = server.score("{}", {"Origin": "https://anywhere.example"})
    assert reply.json() == {"AZUREML_MODEL_DIR": "models", "WORKER_COUNT": "2",
                            "AZUREML_ENTRY_SCRIPT": str((code_dir / "score.py").resolve())}
    assert reply.headers["access-control-allow-origin"] == "https://anywhere.example"
    wait_until(lambda: "--appinsights_instrumentation_key is ignored" in started.log(), 10,
               what="the ignored-flag log line")


def test_bad_run_signature_exits_3(processes: ProcessGroup, code_dir: Path) -> None:
    write_script(code_dir, "def init():\n    pass\n\ndef run(*args):\n    return 1\n")
    started = processes.python(*server_args(code_dir), "--port", "0")
    assert started.proc.wait(60) == 3
    assert "run() cannot accept positional-only arguments, *args, or **kwargs." in started.log()


def test_console_script_entry_point_exists() -> None:
    """pyproject's `scoregate-scoring-server = scoring_servers.azureml.__main__:main`."""
    from scoring_servers.azureml.__main__ import main

    assert callable(main)
