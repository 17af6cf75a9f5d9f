"""The init()/run() contract, against one real server process (see conftest.CONTRACT_SCRIPT)."""

from __future__ import annotations

import json
import uuid

from tests.scoring_servers.server_helpers import ScoringServer
from tests.support.processes import wait_until

RUN_FAILED = "An unexpected error occurred in scoring script. Check the logs for more info."


def test_list_result_is_json_dumps_of_it(contract_server: ScoringServer) -> None:
    reply = contract_server.score('{"kind": "list"}')
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.body == json.dumps([1, 2.5, "three", None]).encode()


def test_dict_result_keeps_json_dumps_spacing_and_order(contract_server: ScoringServer) -> None:
    reply = contract_server.score('{"kind": "dict"}')
    assert reply.body == b'{"b": 2, "a": [1, 2]}'


def test_str_result_is_a_quoted_json_string(contract_server: ScoringServer) -> None:
    reply = contract_server.score('{"kind": "str"}')
    assert (reply.status, reply.body) == (200, b'"plain text"')


def test_none_result_is_an_empty_object(contract_server: ScoringServer) -> None:
    reply = contract_server.score('{"kind": "none"}')
    assert (reply.status, reply.body) == (200, b"{}")


def test_run_gets_the_body_as_the_exact_str(contract_server: ScoringServer) -> None:
    body = '{"kind": "echo", "text": "grüße ✓"}'
    reply = contract_server.score(body)
    assert reply.json() == body


def test_init_runs_once(contract_server: ScoringServer) -> None:
    for _ in range(3):
        reply = contract_server.score('{"kind": "init-calls"}')
    assert reply.json() == ["init"]


def test_environment_variables_reach_the_script(contract_server: ScoringServer) -> None:
    names = ["MY_SETTING", "AZUREML_MODEL_DIR", "SCOREGATE_SURELY_UNSET"]
    reply = contract_server.score(json.dumps({"kind": "env", "names": names}))
    values = reply.json()
    assert values["MY_SETTING"] == "from-the-deployment"
    assert values["AZUREML_MODEL_DIR"].endswith("models")
    assert values["SCOREGATE_SURELY_UNSET"] is None


def test_run_raising_gives_500_and_logs_the_traceback(contract_server: ScoringServer) -> None:
    request_id = f"failing-{uuid.uuid4()}"
    reply = contract_server.score('{"kind": "explode"}', {"x-request-id": request_id})
    assert reply.status == 500
    assert reply.json() == {"message": RUN_FAILED}
    assert reply.headers["x-request-id"] == request_id
    wait_until(lambda: request_id in contract_server.started.log(), 10, what="the error in the log")
    log = contract_server.started.log()
    assert "Traceback (most recent call last)" in log
    assert "ValueError: contract script: unknown kind explode" in log


def test_unencodable_result_gives_azmlinfsrvs_500(contract_server: ScoringServer) -> None:
    reply = contract_server.score('{"kind": "not-json"}')
    assert reply.status == 500
    assert reply.json() == {
        "message": "An unexpected internal error occurred. Check the logs for more info."}
    wait_until(lambda: "json.dumps cannot encode" in contract_server.started.log(), 10,
               what="the reason in the log")


def test_non_utf8_body_gives_400(contract_server: ScoringServer) -> None:
    reply = contract_server.score(b'{"kind": "\xff\xfe"}')
    assert reply.status == 400
    assert "UTF-8" in reply.json()["message"]


def test_logging_info_of_the_script_reaches_the_log(contract_server: ScoringServer) -> None:
    contract_server.score('{"kind": "str"}')
    wait_until(lambda: "contract script: run got 'str'" in contract_server.started.log(), 10,
               what="the script's logging.info line")
    assert "contract script: init ran" in contract_server.started.log()


def test_request_id_is_echoed_or_fresh(contract_server: ScoringServer) -> None:
    echoed = contract_server.score('{"kind": "str"}', {"x-request-id": "my-id-1"})
    fresh = [contract_server.score('{"kind": "str"}').headers["x-request-id"] for _ in range(2)]
    assert echoed.headers["x-request-id"] == "my-id-1"
    assert all(uuid.UUID(value).version == 4 for value in fresh)
    assert fresh[0] != fresh[1]


def test_too_long_request_id_gives_431(contract_server: ScoringServer) -> None:
    reply = contract_server.score('{"kind": "str"}', {"x-request-id": "x" * 101})
    assert reply.status == 431
    assert "x-request-id" in reply.json()["message"]


def test_exec_ms_header_is_a_duration(contract_server: ScoringServer) -> None:
    reply = contract_server.score('{"kind": "list"}')
    exec_ms = reply.headers["x-ms-run-fn-exec-ms"]
    assert float(exec_ms) >= 0.0
    assert len(exec_ms.split(".")[1]) == 3


def test_get_score_passes_query_parameters_as_json(contract_server: ScoringServer) -> None:
    reply = contract_server.request("GET", "/score?kind=echo&n=5&tag=a&tag=b")
    assert reply.status == 200
    assert json.loads(reply.json()) == {"kind": "echo", "n": 5, "tag": ["a", "b"]}


def test_health_probe_answers_healthy(contract_server: ScoringServer) -> None:
    reply = contract_server.request("GET", "/")
    assert (reply.status, reply.body) == (200, b"Healthy")
    assert reply.headers["content-type"] == "text/html; charset=utf-8"  # as azmlinfsrv


def test_unknown_route_and_method_give_azmlinfsrvs_json_errors(
        contract_server: ScoringServer) -> None:
    missing = contract_server.request("GET", "/nowhere")
    wrong_method = contract_server.request("DELETE", "/score")
    assert (missing.status, wrong_method.status) == (404, 405)
    assert missing.json()["message"].startswith("The requested URL was not found on the server.")
    assert wrong_method.json() == {"message": "The method is not allowed for the requested URL."}
