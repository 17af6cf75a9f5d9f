"""GET /swagger.json: the code folder's file per ?version=, else a minimal document."""

from __future__ import annotations

import json
from pathlib import Path

from tests.scoring_servers.server_helpers import start_server, write_script
from tests.support.processes import ProcessGroup

OWN_SWAGGER2 = {"swagger": "2.0", "info": {"title": "mine", "version": "7"}, "paths": {}}


def test_swagger_documents(processes: ProcessGroup, code_dir: Path) -> None:
    write_script(code_dir, "def init():\n    pass\n\ndef run(raw_data):\n    return 1\n")
    (code_dir / "swagger2.json").write_text(json.dumps(OWN_SWAGGER2))
    server = start_server(processes, code_dir)

    default = server.request("GET", "/swagger.json")
    assert (default.status, default.json()) == (200, OWN_SWAGGER2)
    assert server.request("GET", "/swagger.json?version=2.0").json() == OWN_SWAGGER2

    minimal = server.request("GET", "/swagger.json?version=3")
    assert minimal.status == 200
    assert minimal.json()["openapi"] == "3.0.3"
    assert set(minimal.json()["paths"]) == {"/", "/score", "/swagger.json"}  # azmlinfsrv's
    assert server.request("GET", "/swagger.json?version=3.1").json()["openapi"] == "3.1.0"

    unknown = server.request("GET", "/swagger.json?version=9")
    assert unknown.status == 404
    assert "Swagger version [9] is not valid" in unknown.json()["message"]


def test_minimal_swagger2_without_files(processes: ProcessGroup, code_dir: Path) -> None:
    write_script(code_dir, "def init():\n    pass\n\ndef run(raw_data):\n    return 1\n")
    document = start_server(processes, code_dir).request("GET", "/swagger.json").json()
    assert document["swagger"] == "2.0"
    assert "post" in document["paths"]["/score"]
