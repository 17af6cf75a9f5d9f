from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scoring_servers.server_helpers import ScoringServer, start_server, write_script
from tests.support.processes import ProcessGroup

CONTRACT_SCRIPT = """
    import json
    import logging
    import os

    calls = []


    def init():
        calls.append("init")
        logging.info("contract script: init ran, model dir %s", os.getenv("AZUREML_MODEL_DIR"))


    def run(raw_data):
        request = json.loads(raw_data)
        logging.info("contract script: run got %r", request.get("kind"))
        kind = request["kind"]
        if kind == "list":
            return [1, 2.5, "three", None]
        if kind == "str":
            return "plain text"
        if kind == "none":
            return None
        if kind == "dict":
            return {"b": 2, "a": [1, 2]}
        if kind == "echo":
            return raw_data
        if kind == "env":
            return {name: os.getenv(name) for name in request["names"]}
        if kind == "init-calls":
            return calls
        if kind == "not-json":
            return {1, 2}
        raise ValueError("contract script: unknown kind " + kind)
"""


@pytest.fixture(scope="module")
def contract_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScoringServer]:
    """One server for the read-only contract tests of a module (starting one costs ~1 s)."""
    root = tmp_path_factory.mktemp("contract")
    code = write_script(root / "code", CONTRACT_SCRIPT)
    env = {"AZUREML_MODEL_DIR": str(root / "models"), "MY_SETTING": "from-the-deployment"}
    with ProcessGroup(root / "logs") as group:
        yield start_server(group, code, env)


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    return tmp_path / "code"
