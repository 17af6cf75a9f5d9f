"""`scoregate environment create|list|show|archive|restore|build|built|gc`: Azure's registered
environments (`az ml environment ...`), plus building ahead of time and the environments built
on this machine.

`create -f env.yml` reads Azure's environment YAML here, with the conda file it names (a path
relative to the YAML file), and sends both as JSON: the server keeps the conda file's content,
so the environment means the same thing after the file changes. Bad YAML names the file and
the line.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from control_plane.cli.client import AdminClient
from control_plane.cli.progress import BUILD_TIMEOUT_S
from control_plane.cli.verbs import Verbs, add_overrides, get, load, overridden
from control_plane.errors import ConfigError, ScoregateError
from control_plane.specs.resources import DeploymentSpec

ENVIRONMENTS = "/v1/environments"


def create(client: AdminClient, args: argparse.Namespace) -> Any:
    data = read_yaml(Path(args.file))
    if not isinstance(data, dict):
        raise ConfigError(args.file, None, "an environment file is a mapping with 'name' and "
                                           "'conda_file'")
    conda = data.get("conda_file")
    if isinstance(conda, str):
        data["conda_file"] = read_yaml(Path(args.file).parent / conda, args.file, "conda_file")
    for flag in ("name", "version"):
        if getattr(args, flag) is not None:
            data[flag] = getattr(args, flag)
    body = {"environment": overridden(data, args), "source": args.file}
    return client.call("POST", ENVIRONMENTS, body)


def list_all(client: AdminClient, args: argparse.Namespace) -> Any:
    archived = "true" if args.include_archived else None
    if args.name:
        return client.call("GET", f"{ENVIRONMENTS}/{args.name}/versions",
                           include_archived=archived)
    return client.call("GET", ENVIRONMENTS, include_archived=archived)


def show(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.call("GET", f"{ENVIRONMENTS}/{args.name}", version=args.version,
                       label=args.label)


def archive(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.call("POST", f"{ENVIRONMENTS}/{args.name}/archive", version=args.version)


def restore(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.call("POST", f"{ENVIRONMENTS}/{args.name}/restore", version=args.version)


def build(client: AdminClient, args: argparse.Namespace) -> Any:
    """Ahead of time: a registered environment, a conda file, or what a deployment runs."""
    given = [flag for flag in ("name", "conda_file", "file") if getattr(args, flag)]
    if len(given) != 1:
        raise ScoregateError("give one of --name (with --version or --label), --conda-file, "
                             "or -f with a deployment YAML")
    if args.name:
        reference = (f"azureml:{args.name}:{args.version}" if args.version
                     else f"azureml:{args.name}@{args.label or 'latest'}")
        body: dict[str, Any] = {"environment": reference}
    elif args.conda_file:
        path = Path(args.conda_file)
        read_yaml(path)  # bad YAML named here, with its line
        body = {"conda_file": path.read_text()}
    else:
        spec = load(args.file, DeploymentSpec, name=None)
        body = {"deployment": spec.to_dict()}
    return client.call("POST", "/v1/environment-builds", body, timeout_s=BUILD_TIMEOUT_S)


def collect(client: AdminClient, args: argparse.Namespace) -> Any:
    body = {} if args.grace_hours is None else {"grace_hours": args.grace_hours}
    return client.call("POST", "/v1/built-environments/gc", body)


def read_yaml(path: Path, referrer: str | None = None, key: str | None = None) -> Any:
    try:
        text = path.read_text()
    except OSError as error:
        if referrer is not None:
            raise ConfigError(referrer, key, f"cannot read {path}: {error.strerror}") from None
        raise ScoregateError(f"cannot read {path}: {error.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(str(path), None, f"not valid YAML: {problem}", line) from None


def add_commands(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    verbs = Verbs(parser.add_subparsers(dest="verb", metavar="VERB", required=True), common,
                  "environment")
    created = verbs.add("create", create, "register an environment version from Azure's "
                        "environment YAML", required=False)
    created.add_argument("-f", "--file", required=True, help="environment YAML")
    created.add_argument("-v", "--version", help="version (default: the file's, else next)")
    add_overrides(created)
    listed = verbs.add("list", list_all, "registered environments (one name: its versions)",
                       required=False)
    listed.add_argument("--include-archived", action="store_true")
    for name, run, text in (("show", show, "one version (default @latest)"),
                            ("archive", archive, "archive one version, or every version"),
                            ("restore", restore, "restore one version, or every version")):
        sub = verbs.add(name, run, text)
        sub.add_argument("-v", "--version")
        if name == "show":
            sub.add_argument("-l", "--label", choices=("latest",))
    built = verbs.add("build", build, "build an environment now, ahead of a deployment",
                      required=False)
    built.add_argument("-v", "--version")
    built.add_argument("-l", "--label", choices=("latest",))
    built.add_argument("--conda-file", help="a conda environment file")
    built.add_argument("-f", "--file", help="a deployment YAML: the environment it runs in")
    verbs.add("built", get(lambda args: "/v1/built-environments"),
              "environments built on this machine, their disk use and whether in use",
              named=False)
    collected = verbs.add("gc", collect, "remove built environments no deployment used for "
                          "the grace period", named=False)
    collected.add_argument("--grace-hours", type=float,
                           help="unused this long (default: serve's; 0: every unused one)")
