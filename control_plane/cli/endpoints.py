"""`scoregate online-endpoint create|show|list|update|invoke|evaluate|get-credentials|
regenerate-keys|delete` (and the `rollout` group, from `rollouts.py`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import httpx

from control_plane.cli import autodeploy, evaluate, rollouts
from control_plane.cli.client import INVOKE_TIMEOUT_S, AdminClient, Raw, scoring_target
from control_plane.cli.verbs import Verbs, add_overrides, confirm, get, load, overridden, post
from control_plane.errors import ScoregateError
from control_plane.specs.resources import EndpointSpec
from control_plane.specs.validation import parse_traffic


def _path(args: argparse.Namespace, tail: str = "") -> str:
    return f"/v1/endpoints/{args.name}{tail}"


def create(client: AdminClient, args: argparse.Namespace) -> Any:
    if args.file is not None:
        spec = load(args.file, EndpointSpec, name=args.name,
                    overrides=args.overrides).to_dict()
    elif args.name:
        spec = overridden({"name": args.name}, args)
    else:
        raise ScoregateError("give the endpoint's --name or a --file with its YAML")
    if args.local:
        spec["local"] = True
    return client.call("POST", "/v1/endpoints", spec)


def update(client: AdminClient, args: argparse.Namespace) -> Any:
    patch: dict[str, Any] = {}
    if args.file is not None:
        spec = load(args.file, EndpointSpec, name=args.name, overrides=args.overrides)
        patch = {k: v for k, v in spec.to_dict().items()
                 if k not in ("name", "local") and v != {}}
    else:
        patch = overridden(patch, args, patch=True)
    if args.traffic is not None:
        patch["traffic"] = parse_traffic(args.traffic)
    if args.mirror_traffic is not None:
        patch["mirror_traffic"] = parse_traffic(args.mirror_traffic)
    if not patch:
        raise ScoregateError("nothing to update: give --traffic, --mirror-traffic, --set or -f")
    return client.call("PATCH", _path(args), patch)


def invoke(client: AdminClient, args: argparse.Namespace) -> Raw:
    endpoint, secret = scoring_target(client, args.name)
    try:
        body = Path(args.request_file).read_bytes()
    except OSError as error:
        raise ScoregateError(f"cannot read --request-file {args.request_file}: "
                             f"{error.strerror or error}") from None
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    if args.deployment_name:
        headers["azureml-model-deployment"] = args.deployment_name
    try:
        response = httpx.post(endpoint["scoring_uri"], content=body, headers=headers,
                              timeout=INVOKE_TIMEOUT_S)
    except httpx.HTTPError as error:
        raise ScoregateError(f"cannot reach {endpoint['scoring_uri']}: {error}") from None
    if not response.is_success:
        raise ScoregateError(f"invoke failed with HTTP {response.status_code}: "
                             f"{response.text.strip()[:500]}")
    return Raw(response.text)


def delete(client: AdminClient, args: argparse.Namespace) -> Any:
    confirm(args, f"endpoint {args.name} and all its deployments")
    return client.call("DELETE", _path(args))


def add_commands(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    verbs = Verbs(parser.add_subparsers(dest="verb", metavar="VERB", required=True), common,
                  "endpoint")
    created = verbs.add("create", create, "create an endpoint", required=False)
    created.add_argument("-f", "--file", help="endpoint YAML (its name yields to --name)")
    add_overrides(created)
    verbs.add("show", get(_path), "show an endpoint")
    verbs.add("list", get(lambda args: "/v1/endpoints"), "list endpoints", named=False)
    updated = verbs.add("update", update, "change traffic, mirror traffic or fields")
    updated.add_argument("--traffic", help='live traffic, e.g. "blue=90 green=10"')
    updated.add_argument("--mirror-traffic",
                         help='mirror traffic, e.g. "green=10" ("green=0": off)')
    updated.add_argument("-f", "--file", help="endpoint YAML with the new settings")
    add_overrides(updated, update=True)
    invoked = verbs.add("invoke", invoke, "score a request and print the answer")
    invoked.add_argument("-r", "--request-file", required=True, help="the JSON body to send")
    invoked.add_argument("-d", "--deployment-name", help="send it to this deployment directly")
    evaluate.add_command(verbs.verbs)
    verbs.add("get-credentials", post(lambda args: _path(args, "/get-credentials")),
              "keys (auth_mode key) or a token (aml_token)")
    keys = verbs.add("regenerate-keys",
                     post(lambda args: _path(args, "/regenerate-keys"),
                          lambda args: {"key_type": args.key_type}),
                     "replace the primary or the secondary key")
    keys.add_argument("--key-type", required=True, choices=("primary", "secondary"))
    verbs.add_delete(delete, "delete an endpoint and its deployments")
    rollouts.add_rollout_commands(verbs.verbs, common)
    autodeploy.add_autodeploy_commands(verbs.verbs, common)
