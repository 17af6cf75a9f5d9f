"""What the verb groups share: adding a verb with the flags that name its resource, `--set`,
reading a spec's YAML locally, and the delete confirmation."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from control_plane.cli.client import AdminClient
from control_plane.errors import ScoregateError
from control_plane.specs.resources import DeploymentSpec, EndpointSpec

Command = Callable[[AdminClient, argparse.Namespace], Any]
SubParsers = argparse._SubParsersAction  # argparse's type for `add_subparsers()`
_STRING_MAPS = ("environment_variables", "tags")  # --set values under these stay text
SpecT = TypeVar("SpecT", EndpointSpec, DeploymentSpec)


@dataclass(frozen=True)
class Verbs:
    """Adds the verbs of one command group, each with the flags that name its resource."""

    verbs: SubParsers[argparse.ArgumentParser]
    common: argparse.ArgumentParser
    kind: str  # "endpoint" or "deployment"

    def add(self, name: str, run: Command, help_text: str, *, named: bool = True,
            required: bool = True) -> argparse.ArgumentParser:
        sub = self.verbs.add_parser(name, parents=[self.common], help=help_text)
        if named:
            sub.add_argument("-n", "--name", required=required, help=f"{self.kind} name")
        if self.kind == "deployment":
            sub.add_argument("-e", "--endpoint-name", required=required,
                             help="endpoint name (--endpoint works too)")
        sub.set_defaults(run=run)
        return sub

    def add_delete(self, run: Command, help_text: str) -> None:
        delete = self.add("delete", run, help_text)
        delete.add_argument("-y", "--yes", action="store_true", help="do not ask to confirm")


def get(path_of: Callable[[argparse.Namespace], str]) -> Command:
    return lambda client, args: client.call("GET", path_of(args))


def post(path_of: Callable[[argparse.Namespace], str],
         body_of: Callable[[argparse.Namespace], Any] = lambda args: None) -> Command:
    return lambda client, args: client.call("POST", path_of(args), body_of(args))


def load(path: str, kind: type[SpecT], name: str | None,
         endpoint_name: str | None = None) -> SpecT:
    """The spec in the YAML file at `path`, read here (paths resolve against its folder)."""
    from control_plane.specs.loader import load_file

    spec = load_file(path, name=name, endpoint_name=endpoint_name)
    if not isinstance(spec, kind):
        found = "an endpoint" if isinstance(spec, EndpointSpec) else "a deployment"
        wanted = "an endpoint" if kind is EndpointSpec else "a deployment"
        raise ScoregateError(f"{path} describes {found}, but this command needs {wanted}")
    return spec


def add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", type=parse_set, metavar="KEY=VALUE",
                        help="set a field, e.g. instance_count=2, "
                             "request_settings.request_timeout_ms=3000, environment_variables.X=1")


def parse_set(text: str) -> tuple[list[str], Any]:
    """`request_settings.request_timeout_ms=3000` → (["request_settings", ...], 3000)."""
    key, equals, raw = text.partition("=")
    path = key.strip().split(".")
    if not equals or not all(path):
        raise argparse.ArgumentTypeError(
            f"--set expects KEY=VALUE (e.g. instance_count=2), got {text!r}")
    if path[0] in _STRING_MAPS:
        return path, raw
    try:
        return path, json.loads(raw)
    except ValueError:
        return path, raw


def with_sets(base: dict[str, Any], sets: list[tuple[list[str], Any]] | None) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(json.dumps(base))  # a deep copy
    for path, value in sets or []:
        target = result
        for key in path[:-1]:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target = target[key]
        target[path[-1]] = value
    return result


def confirm(args: argparse.Namespace, what: str) -> None:
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise ScoregateError(f"refusing to delete {what} without --yes")
    answer = input(f"Delete {what}? (y/n): ").strip().lower()
    if answer not in ("y", "yes"):
        raise ScoregateError("not deleted")
