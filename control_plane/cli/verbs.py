"""What the verb groups share: adding a verb with the flags that name its resource, `--set`,
reading a spec's YAML locally, and the delete confirmation."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from control_plane.cli.client import AdminClient
from control_plane.errors import ScoregateError
from control_plane.specs.overrides import Override, parse_add, parse_remove, parse_set
from control_plane.specs.overrides import apply as apply_overrides
from control_plane.specs.resources import DeploymentSpec, EndpointSpec

Command = Callable[[AdminClient, argparse.Namespace], Any]
SubParsers = argparse._SubParsersAction  # argparse's type for `add_subparsers()`
LOCAL_HELP = ("as Azure's local endpoints: `online-endpoint create --local` makes an "
              "endpoint that takes requests without a key (loopback listener only); "
              "elsewhere accepted (every endpoint here runs on this machine)")
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
        if self.kind in ("endpoint", "deployment"):  # deploy-local-endpoint.sh passes it
            sub.add_argument("--local", action="store_true", help=LOCAL_HELP)
        sub.set_defaults(run=run)
        return sub

    def add_delete(self, run: Command, help_text: str) -> argparse.ArgumentParser:
        delete = self.add("delete", run, help_text)
        delete.add_argument("-y", "--yes", action="store_true", help="do not ask to confirm")
        return delete


def get(path_of: Callable[[argparse.Namespace], str]) -> Command:
    return lambda client, args: client.call("GET", path_of(args))


def post(path_of: Callable[[argparse.Namespace], str],
         body_of: Callable[[argparse.Namespace], Any] = lambda args: None) -> Command:
    return lambda client, args: client.call("POST", path_of(args), body_of(args))


def load(path: str, kind: type[SpecT], name: str | None,
         endpoint_name: str | None = None, overrides: Sequence[Override] = ()) -> SpecT:
    """The spec in the YAML file at `path`, read here (paths resolve against its folder), with
    the overrides applied to the file's values before they are validated."""
    from control_plane.specs.loader import load_file

    spec = load_file(path, name=name, endpoint_name=endpoint_name, overrides=overrides)
    if not isinstance(spec, kind):
        found = "an endpoint" if isinstance(spec, EndpointSpec) else "a deployment"
        wanted = "an endpoint" if kind is EndpointSpec else "a deployment"
        raise ScoregateError(f"{path} describes {found}, but this command needs {wanted}")
    return spec


def add_overrides(parser: argparse.ArgumentParser, *, update: bool = False) -> None:
    """`--set` on every create and update verb, `--add` and `--remove` on update verbs (and
    `model create`), as `az` has them. They change the YAML file's values before anything is
    validated (`specs/overrides.py`), in the order given."""
    parser.set_defaults(overrides=[])
    parser.add_argument("--set", action=_OverrideAction, metavar="KEY=VALUE",
                        help="set a field, e.g. instance_count=2, endpoint_name=my-endpoint, "
                             "model=azureml:my-model:3, request_settings.request_timeout_ms=3000")
    if update:
        parser.add_argument("--add", action=_OverrideAction, nargs=2,
                            metavar=("KEY", "VALUE"),
                            help="add KEY=VALUE to a mapping (e.g. --add tags owner=me) or a "
                                 "value to a list")
        parser.add_argument("--remove", action=_OverrideAction, nargs="+",
                            metavar="KEY [INDEX]",
                            help="remove a key (e.g. --remove tags.owner) or a list item")


class _OverrideAction(argparse.Action):
    """Collects `--set/--add/--remove` into one ordered list of `Override`s."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        try:
            if option_string == "--set":
                found = parse_set(str(values))
            elif option_string == "--add":
                found = parse_add(*values)
            elif len(values) > 2:
                raise ScoregateError(f"--remove expects KEY [INDEX], got {' '.join(values)}")
            else:
                found = parse_remove(*values)
        except ScoregateError as error:
            raise argparse.ArgumentError(self, error.message) from None
        namespace.overrides = [*getattr(namespace, "overrides", []), found]


def overridden(base: dict[str, Any], args: argparse.Namespace, *,
               patch: bool = False) -> dict[str, Any]:
    """`base` (a body built from flags, not a file) with the command's overrides; in a patch,
    `--remove` sends null (the server's merge patch deletes that key)."""
    changed: dict[str, Any] = apply_overrides(base, getattr(args, "overrides", []),
                                              null_removes=patch)
    return changed


def confirm(args: argparse.Namespace, what: str) -> None:
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise ScoregateError(f"refusing to delete {what} without --yes")
    answer = input(f"Delete {what}? (y/n): ").strip().lower()
    if answer not in ("y", "yes"):
        raise ScoregateError("not deleted")
