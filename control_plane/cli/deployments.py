"""`scoregate online-deployment create|update|show|list|delete|get-logs|compare`.

`create` and `update` wait, as `az ml` does, until the deployment is `Succeeded` (exit 0) or
`Failed` (exit 1, with the reason and the instance log's last lines), printing its progress on
stderr; `--no-wait` answers at once with `Creating` / `Updating` and `show` tells the rest.
The server bounds the wait by the deployment's own readiness probe settings.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from control_plane.cli.client import AdminClient, Raw
from control_plane.cli.progress import BUILD_TIMEOUT_S, BuildPrinter
from control_plane.cli.verbs import Verbs, add_overrides, confirm, get, load, overridden
from control_plane.errors import OperationFailed, ScoregateError
from control_plane.specs.resources import DeploymentSpec

IN_PROGRESS = ("Creating", "Updating", "Deleting")
POLL_S = 0.5  # between two reads of `show`, after a quick first few
_WRITE_FIELDS = ("snapshot_version", "effective_at")


def _path(args: argparse.Namespace, tail: str = "") -> str:
    return f"/v1/endpoints/{args.endpoint_name}/deployments/{args.name}{tail}"


def create(client: AdminClient, args: argparse.Namespace) -> Any:
    spec = load(args.file, DeploymentSpec, name=args.name, endpoint_name=args.endpoint_name,
                overrides=args.overrides)
    path = f"/v1/endpoints/{spec.endpoint_name}/deployments"
    if args.with_package:
        package(client, spec.to_dict())
    answer = client.call("POST", path, spec.to_dict(), wait="false",
                         all_traffic="true" if args.all_traffic else None)
    if args.no_wait:
        return answer
    return _until_done(client, f"{path}/{answer['name']}", answer, args.all_traffic)


def package(client: AdminClient, body: dict[str, Any]) -> None:
    """Azure's model packaging, here: the environment built completely, before the create."""
    print("environment: building it first (--with-package)", file=sys.stderr, flush=True)
    built = client.call("POST", "/v1/environment-builds", {"deployment": body},
                        timeout_s=BUILD_TIMEOUT_S)
    if built.get("state") == "ready":
        print(f"environment: packaged: {built.get('packages')} packages, Python "
              f"{built.get('python')}, in {built.get('took_s', 0):.1f} s", file=sys.stderr,
              flush=True)


def update(client: AdminClient, args: argparse.Namespace) -> Any:
    patch: dict[str, Any] = {}
    if args.file is not None:
        spec = load(args.file, DeploymentSpec, name=args.name, endpoint_name=args.endpoint_name,
                    overrides=args.overrides)
        patch = {k: v for k, v in spec.to_dict().items()
                 if k not in ("name", "endpoint_name", "not_applied")}
    else:
        patch = _model_patch(overridden(patch, args, patch=True))
    if not patch:
        raise ScoregateError("nothing to update: give --set KEY=VALUE or -f")
    answer = client.call("PATCH", _path(args), patch, wait="false")
    if args.no_wait:
        return answer
    return _until_done(client, _path(args), answer, all_traffic=False)


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
    return client.call("DELETE", _path(args), wait="false" if args.no_wait else None)


def logs(client: AdminClient, args: argparse.Namespace) -> Raw:
    return Raw(client.call("GET", _path(args, "/logs"), lines=args.lines)["logs"])


def _until_done(client: AdminClient, path: str, answer: dict[str, Any],
                all_traffic: bool) -> dict[str, Any]:
    """Polls `show` until the operation ended; progress lines go to stderr when they change."""
    written = {name: answer[name] for name in _WRITE_FIELDS if name in answer}
    shown, last, delay = answer, "", 0.05
    build, started = BuildPrinter(sys.stderr), time.monotonic()
    while shown.get("provisioning_state") in IN_PROGRESS:
        line = _progress(shown)
        if line != last:
            print(line, file=sys.stderr, flush=True)
            last = line
        build.show(shown.get("environment_status"))
        time.sleep(delay)
        delay = min(delay * 2, POLL_S)
        shown = client.call("GET", path)
    build.finish(shown.get("environment_status"), time.monotonic() - started)
    if shown.get("provisioning_state") == "Failed":
        reason, _, details = str(shown.get("provisioning_message", "")).partition("\n")
        kept = " (traffic unchanged: --all-traffic was not applied)" if all_traffic else ""
        raise OperationFailed(f"deployment {shown['name']} of endpoint {shown['endpoint_name']} "
                              f"Failed: {reason}{kept}", details)
    return {**shown, **written}


def _progress(shown: dict[str, Any]) -> str:
    instances = shown.get("instances") or []
    states = ", ".join(f"{i['id']} {i['state']}" for i in instances) or "no instance yet"
    rolling = shown.get("rolling_update_status")
    batch = (f"batch {rolling['batch']}/{rolling['batches']} {rolling['state']}"
             f" ({rolling['new_instances']} new): "
             if isinstance(rolling, dict) and rolling.get("state") in ("rolling", "baking") else "")
    return f"{shown['provisioning_state']} {shown['name']}: {batch}{states}"


def add_commands(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    verbs = Verbs(parser.add_subparsers(dest="verb", metavar="VERB", required=True), common,
                  "deployment")
    created = verbs.add("create", create, "create a deployment", required=False)
    created.add_argument("-f", "--file", required=True, help="deployment YAML")
    created.add_argument("--all-traffic", action="store_true",
                         help="once it is Succeeded, give it 100%% of live traffic and every "
                              "other deployment 0%% (never if it Failed)")
    _add_no_wait(created)
    add_overrides(created)
    created.add_argument("--with-package", action="store_true",
                         help="build its environment completely before creating it (Azure's "
                              "model packaging); the command fails if the build does")
    updated = verbs.add("update", update, "change instance_count, settings, variables")
    updated.add_argument("-f", "--file", help="deployment YAML with the new settings")
    _add_no_wait(updated)
    add_overrides(updated, update=True)
    verbs.add("show", get(_path), "show a deployment, its provisioning_state and its instances")
    verbs.add("list", get(lambda args: f"/v1/endpoints/{args.endpoint_name}/deployments"),
              "list the deployments of an endpoint", named=False)
    deleted = verbs.add_delete(delete, "delete a deployment (not one with traffic)")
    _add_no_wait(deleted)
    logged = verbs.add("get-logs", logs, "print the last lines of its environment's build "
                       "log and of its instances' logs")
    logged.add_argument("-l", "--lines", type=int, default=5000, help="how many (default 5000)")
    verbs.add("compare", get(lambda args: _path(args, "/compare")),
              "shadow comparison of its mirror copies with the live answers: counts, "
              "agreement rate, memory, last mismatching pairs")


def _add_no_wait(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-wait", action="store_true",
                        help="answer at once (Creating / Updating / Deleting); "
                             "`online-deployment show` tells how it ends")
