"""azmlinfsrv's command line and environment, next to the control plane's (`--fd --code
--entry`), parsed in process."""

from __future__ import annotations

from pathlib import Path

import pytest

from scoring_servers.azureml.errors import UsageError
from scoring_servers.azureml.settings import DEFAULT_PORT, SERVER_VERSION, parse_settings


@pytest.fixture
def entry(tmp_path: Path) -> Path:
    path = tmp_path / "app" / "score.py"
    path.parent.mkdir()
    path.write_text("def init():\n    pass\n\ndef run(data):\n    return data\n")
    return path


def test_azmlinfsrv_defaults(entry: Path) -> None:
    settings = parse_settings(["--entry_script", str(entry)], {})
    assert (settings.host, settings.port, settings.fd) == ("127.0.0.1", DEFAULT_PORT, None)
    assert DEFAULT_PORT == 5001
    assert (settings.entry_path, settings.code_dir) == (entry, entry.parent)
    assert settings.worker_count == 1 and not settings.worker_count_given
    assert settings.server_version == SERVER_VERSION
    assert settings.cors_origins is None
    assert (settings.service_name, settings.service_version) == ("ML service", "1.0")


def test_control_plane_command_line_is_unchanged(entry: Path) -> None:
    settings = parse_settings(["--fd", "7", "--code", str(entry.parent), "--entry", "score.py"],
                              {"WORKER_COUNT": "3", "AZUREML_ENTRY_SCRIPT": "ignored.py"})
    assert (settings.fd, settings.port, settings.worker_count) == (7, None, 3)
    assert settings.entry_path == entry and not settings.entry_script_given


def test_app_root_and_entry_script_from_environment(entry: Path) -> None:
    settings = parse_settings([], {"AML_APP_ROOT": str(entry.parent),
                                   "AZUREML_ENTRY_SCRIPT": "score.py"})
    assert (settings.code_dir, settings.entry_path) == (entry.parent, entry)


def test_flags_override_environment(entry: Path) -> None:
    settings = parse_settings(
        ["--entry_script", str(entry), "--worker_count", "4", "--model_dir", "m",
         "--access_control_allow_origins", "https://a.example", "--host", "::1", "--port", "0",
         "--appinsights_instrumentation_key", "key"],
        {"WORKER_COUNT": "2", "AML_CORS_ORIGINS": "https://b.example"})
    assert (settings.worker_count, settings.worker_count_given) == (4, True)
    assert (settings.model_dir, settings.cors_origins) == ("m", "https://a.example")
    assert (settings.host, settings.port, settings.appinsights_key_given) == ("::1", 0, True)


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, SERVER_VERSION),
    ({"HTTP_X_MS_SERVER_VERSION": "mine/2"}, "mine/2"),
    ({"SERVER_VERSION_LOG_RESPONSE_ENABLED": "false"}, None),
    ({"SERVER_VERSION_LOG_RESPONSE_ENABLED": "false", "HTTP_X_MS_SERVER_VERSION": "x"}, "x"),
])
def test_server_version_header_rules(entry: Path, environ: dict[str, str],
                                     expected: str | None) -> None:
    assert parse_settings(["--entry_script", str(entry)], environ).server_version == expected


@pytest.mark.parametrize("argv", [
    ["--worker_count", "0"],
    ["--entry", "score.py"],  # both --entry and --entry_script
    ["--port", "70000"],
])
def test_bad_flags_are_usage_errors(entry: Path, argv: list[str]) -> None:
    with pytest.raises(UsageError):
        parse_settings(["--entry_script", str(entry), *argv], {})
