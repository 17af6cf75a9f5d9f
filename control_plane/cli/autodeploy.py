"""`scoregate online-endpoint auto-deploy set|show|disable` (docs/autodeploy.md).

`set` reads the gate's labelled CSV here, with the same reader as `evaluate`, and sends its
rows with the policy: the server never reads a file of the client's machine, and a CSV
without the label column is refused before anything is stored.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from control_plane.cli.client import AdminClient
from control_plane.cli.rollouts import add_plan_flags, duration, plan_body
from control_plane.cli.verbs import SubParsers
from control_plane.errors import ScoregateError
from control_plane.specs.autodeploy import (
    AUTO_DEPLOY_PATH,
    FORMATS,
    OLD_DEPLOYMENT,
    ON_GATE_FAILURE,
)
from control_plane.specs.labelled import read_csv
from control_plane.specs.metrics import HIGHER_IS_BETTER, METRICS, default_metric

CURRENT_LIVE = "current-live"


def _path(args: argparse.Namespace) -> str:
    return AUTO_DEPLOY_PATH.format(endpoint=args.name)


def set_policy(client: AdminClient, args: argparse.Namespace) -> Any:
    body: dict[str, Any] = {"model": args.model, "on_gate_failure": args.on_failure,
                            "old_deployment": args.old_deployment}
    if args.from_deployment and args.from_deployment != CURRENT_LIVE:
        body["from_deployment"] = args.from_deployment
    rollout = plan_body(args)
    if args.mirror is not None:
        rollout["mirror_percent"] = args.mirror
    if args.mirror_for is not None:
        rollout["mirror_bake_s"] = args.mirror_for
    body["rollout"] = rollout
    body.update(_gate(args))
    return client.call("PUT", _path(args), body)


def _gate(args: argparse.Namespace) -> dict[str, Any]:
    """`--gate-data` with `--gate TEXT`, or with `--metric` and `--min` / `--max`."""
    asked = args.gate or args.min is not None or args.max is not None or args.metric
    if args.gate_data is None:
        if asked:
            raise ScoregateError("a gate needs labelled rows: give --gate-data FILE.csv and "
                                 "--label-column")
        return {}
    if not args.label_column:
        raise ScoregateError("--gate-data needs --label-column (the column with the truth)")
    data = read_csv(args.gate_data, args.label_column, "--gate-data")
    gate = args.gate
    if gate is None:
        metric = args.metric or default_metric(data.labels)
        higher = HIGHER_IS_BETTER[metric]
        bound = args.min if higher else args.max
        if bound is None:
            raise ScoregateError(f"--metric {metric} needs {'--min' if higher else '--max'} "
                                 f"(or give --gate, e.g. '{metric} "
                                 f"{'>=' if higher else '<='} live')")
        gate = f"{metric} {'>=' if higher else '<='} {bound}"
    return {"gate": gate, "gate_data": {
        "columns": list(data.columns), "rows": [list(row) for row in data.rows],
        "labels": list(data.labels), "label_column": args.label_column,
        "source": Path(args.gate_data).name, "format": args.format,
        "batch_size": args.batch_size}}


def add_autodeploy_commands(verbs: SubParsers[argparse.ArgumentParser],
                            common: argparse.ArgumentParser) -> None:
    """`verbs` is the online-endpoint group's subparsers."""
    group = verbs.add_parser("auto-deploy", help="deploy new model versions by themselves, "
                             "behind a gate and a guarded rollout")
    actions = group.add_subparsers(dest="autodeploy_verb", metavar="ACTION", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = actions.add_parser(name, parents=[common],
                                                          help=help_text)
        sub.add_argument("-n", "--name", required=True, help="endpoint name")
        return sub

    setter = add("set", "set (or replace) the endpoint's policy")
    setter.set_defaults(run=set_policy)
    _set_flags(setter)
    add("show", "the policy and its newest runs").set_defaults(
        run=lambda client, args: client.call("GET", _path(args)))
    add("disable", "remove the policy (queued versions are skipped)").set_defaults(
        run=lambda client, args: client.call("DELETE", _path(args)))


def _set_flags(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--model", required=True, help="the registered model to follow")
    sub.add_argument("--from-deployment", default=CURRENT_LIVE,
                     help="copy this deployment's settings (default current-live: the one "
                          "with the most live traffic when a version is registered)")
    sub.add_argument("--gate-data", metavar="CSV", help="labelled rows the candidate is scored on")
    sub.add_argument("--label-column", help="the CSV column with the true labels")
    sub.add_argument("--metric", choices=METRICS, help="default: accuracy for labels that look "
                     "like classes, else rmse")
    sub.add_argument("--min", type=float, help="lowest value passing (accuracy, f1)")
    sub.add_argument("--max", type=float, help="highest value passing (rmse, mae)")
    sub.add_argument("--gate", help="instead of --metric/--min: 'accuracy >= 0.85', "
                     "'accuracy >= live', 'f1 >= live - 0.02'")
    sub.add_argument("--format", choices=FORMATS, default="azure",
                     help="request body: azure {\"data\": rows} or mlflow input_data")
    sub.add_argument("--batch-size", type=int, default=10, help="rows per gate request (10)")
    sub.add_argument("--mirror", type=int, metavar="PERCENT",
                     help="mirror this percent of live traffic to it before the rollout")
    sub.add_argument("--mirror-for", type=duration, help="length of the mirror phase (120s)")
    sub.add_argument("--on-failure", choices=ON_GATE_FAILURE, default="keep",
                     help="a candidate that fails the gate or the rollout: keep (0%% traffic, "
                          "for inspection) or delete")
    sub.add_argument("--old-deployment", choices=OLD_DEPLOYMENT, default="delete",
                     help="the deployment a promoted one replaced: keep (0%%), scale-down "
                          "(1 instance), scale-to-zero (autoscaled from zero, drained at once) "
                          "or delete (default)")
    add_plan_flags(sub)
