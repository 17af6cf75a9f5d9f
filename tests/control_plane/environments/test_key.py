from __future__ import annotations

from pathlib import Path

from control_plane.environments.key import environment_key, server_root, server_version


def test_key_changes_with_each_input_and_only_with_them() -> None:
    base = environment_key("3.12.1", ["six==1.16.0"], "src-1")
    assert base == environment_key("3.12.1", ["six==1.16.0"], "src-1")
    assert base != environment_key("3.12.1", ["six==1.17.0"], "src-1")
    assert base != environment_key("3.12.2", ["six==1.16.0"], "src-1")
    assert base != environment_key("3.12.1", ["six==1.16.0"], "src-2")


def test_server_version_is_the_declared_one_else_a_hash_of_the_sources(tmp_path: Path) -> None:
    package = tmp_path / "scoring_servers"
    (package / "azureml").mkdir(parents=True)
    (package / "__init__.py").write_text('"""servers"""\n')
    (package / "azureml" / "app.py").write_text("A = 1\n")
    hashed = server_version(package)
    assert hashed.startswith("src-")
    (package / "azureml" / "app.py").write_text("A = 2\n")
    assert server_version(package) != hashed
    (package / "__init__.py").write_text('__version__ = "1.4.0"\n')
    assert server_version(package) == "1.4.0"


def test_the_real_server_is_found() -> None:
    assert (server_root() / "azureml" / "__main__.py").is_file()
