"""`scoregate online-deployment create|update|show|list|delete|get-logs|compare`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from control_plane.cli.client import AdminClient, Raw
from control_plane.cli.verbs import Verbs, add_overrides, confirm, get, load, overridden
from control_plane.errors import ScoregateError
from control_plane.specs.resources import DeploymentSpec


def _path(args: argparse.Namespace, tail: str = "") -> str:
    return f"/v1/endpoints/{args.endpoint_name}/deployments/{args.name}{tail}"


def create(client: AdminClient, args: argparse.Namespace) -> Any:
    spec = load(args.file, DeploymentSpec, name=args.name, endpoint_name=args.endpoint_name,
                overrides=args.overrides)
    return client.call("POST", f"/v1/endpoints/{spec.endpoint_name}/deployments",
                       spec.to_dict(), all_traffic="true" if args.all_traffic else None)


def update(client: AdminClient, args: argparse.Namespace) -> Any:
    patch: dict[str, Any] = {}
    if args.file is not None:
        spec = load(args.file, DeploymentSpec, name=args.name, endpoint_name=args.endpoint_name,
                    overrides=args.overrides)
        patch = {k: v for k, v in spec.to_dict().items() if k not in ("name", "endpoint_name")}
    else:
        patch = _model_patch(overridden(patch, args, patch=True))
    if not patch:
        raise ScoregateError("nothing to update: give --set KEY=VALUE or -f")
    return client.call("PATCH", _path(args), patch)


def _model_patch(patch: dict[str, Any]) -> dict[str, Any]:
    """`--set model=azureml:m@latest` (Azure's key) in a patch without a file: the admin API
    calls it `model_ref` (a path, which exists here, is `model_path`)."""
    if "model" not in patch:
        return patch
    model = patch.pop("model")
    if isinstance(model, str) and Path(model).exists():
        patch["model_path"] = str(Path(model).absolute())
    else:
        patch["model_ref"] = model
    return patch


def delete(client: AdminClient, args: argparse.Namespace) -> Any:
    confirm(args, f"deployment {args.name} of endpoint {args.endpoint_name}")
    return client.call("DELETE", _path(args))


def logs(client: AdminClient, args: argparse.Namespace) -> Raw:
    return Raw(client.call("GET", _path(args, "/logs"), lines=args.lines)["logs"])


def add_commands(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    verbs = Verbs(parser.add_subparsers(dest="verb", metavar="VERB", required=True), common,
                  "deployment")
    created = verbs.add("create", create, "create a deployment", required=False)
    created.add_argument("-f", "--file", required=True, help="deployment YAML")
    created.add_argument("--all-traffic", action="store_true",
                         help="give it 100%% of live traffic and every other deployment 0%%")
    add_overrides(created)
    updated = verbs.add("update", update, "change instance_count, settings, variables")
    updated.add_argument("-f", "--file", help="deployment YAML with the new settings")
    add_overrides(updated, update=True)
    verbs.add("show", get(_path), "show a deployment and its instances")
    verbs.add("list", get(lambda args: f"/v1/endpoints/{args.endpoint_name}/deployments"),
              "list the deployments of an endpoint", named=False)
    verbs.add_delete(delete, "delete a deployment (not one with traffic)")
    logged = verbs.add("get-logs", logs, "print the last lines of its instances' logs")
    logged.add_argument("-l", "--lines", type=int, default=5000, help="how many (default 5000)")
    verbs.add("compare", get(lambda args: _path(args, "/compare")),
              "shadow comparison of its mirror copies with the live answers: counts, "
              "agreement rate, memory, last mismatching pairs")
