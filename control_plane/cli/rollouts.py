"""`scoregate online-endpoint rollout start|show|pause|resume|promote|abort`.

`start --wait` and `show --watch` poll the admin API, print each verdict as a line, keep a
progress line on a terminal, and end with exit 0 only when the rollout was promoted
(a rolled-back or aborted rollout is an error: one line on stderr, exit 1).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from control_plane.cli.client import AdminClient
from control_plane.cli.verbs import Command, SubParsers
from control_plane.errors import ScoregateError
from control_plane.specs.rollout import ACTIONS, ACTIVE_STATES, ROLLOUT_PATH, SUCCEEDED

POLL_S = 0.5
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def duration(text: str) -> float:
    """`60s`, `2m`, `500ms`, `1.5` (seconds) → seconds."""
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected a duration such as 60s, 2m or 500ms, "
                                         f"got {text!r}")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def percents(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected percents such as 5,25,50,100, "
                                         f"got {text!r}") from None


def _path(args: argparse.Namespace, tail: str = "") -> str:
    return ROLLOUT_PATH.format(endpoint=args.name) + tail


def start(client: AdminClient, args: argparse.Namespace) -> Any:
    body = plan_body(args)
    body["target"] = args.to
    optional = {"mirror_percent": args.mirror_first, "mirror_bake_s": args.mirror_bake,
                "webhook": args.webhook}
    body.update({k: v for k, v in optional.items() if v is not None})
    started = client.call("POST", _path(args), body)
    return follow(client, args, started) if args.wait else started


def plan_body(args: argparse.Namespace) -> dict[str, Any]:
    """The steps and guardrails flags (`add_plan_flags`) as a RolloutStart body, no target."""
    body: dict[str, Any] = {"strategy": args.strategy, "bake_s": args.bake}
    optional = {"canary_percent": args.canary_percent, "step": args.step, "steps": args.steps}
    body.update({k: v for k, v in optional.items() if v is not None})
    guards = {"max_error_rate": args.max_error_rate, "max_p99_ms": args.max_p99_ms,
              "max_p95_ms": args.max_p95_ms, "max_latency_factor": args.max_latency_factor,
              "min_requests": args.min_requests, "on_too_few": args.on_too_few,
              "max_extensions": args.max_extensions, "min_agreement": args.min_agreement}
    body["guardrails"] = {k: v for k, v in guards.items() if v is not None}
    return body


def show(client: AdminClient, args: argparse.Namespace) -> Any:
    rollout = client.call("GET", _path(args))
    return follow(client, args, rollout) if args.watch else rollout


def follow(client: AdminClient, args: argparse.Namespace, rollout: dict[str, Any],
           out: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Poll until the rollout ends, printing each new verdict; the final rollout, or
    ScoregateError when it did not succeed."""
    tty = sys.stderr.isatty()
    write = out or (lambda text: print(text, file=sys.stderr, flush=True))
    seen: set[tuple[int, int]] = set()
    while True:
        for line in _new_verdicts(rollout, seen):
            write(("\r\033[K" if tty else "") + line)
        if tty:
            sys.stderr.write("\r\033[K" + str(rollout.get("progress", "")))
            sys.stderr.flush()
        if rollout["state"] not in ACTIVE_STATES:
            break
        time.sleep(POLL_S)
        rollout = client.call("GET", _path(args))
    if tty:
        sys.stderr.write("\n")
    write(f"rollout {rollout['id']} {rollout['state']}: {rollout.get('reason', '')}")
    if rollout["state"] != SUCCEEDED:
        raise ScoregateError(f"rollout {rollout['id']} of endpoint {rollout['endpoint']} "
                             f"{rollout['state'].replace('_', ' ')}: {rollout.get('reason', '')}")
    return rollout


def _new_verdicts(rollout: dict[str, Any], seen: set[tuple[int, int]]) -> list[str]:
    lines = []
    for index, step in enumerate(rollout["steps"]):
        for number, verdict in enumerate(step.get("verdicts", [])):
            if (index, number) in seen:
                continue
            seen.add((index, number))
            where = f"{rollout['target']} {step['percent']}% " + (
                "mirror" if step["phase"] == "mirror" else "live")
            lines.append(f"step {index + 1}/{len(rollout['steps'])} ({where}): "
                         f"{verdict['outcome']}: {verdict['message']}")
    return lines


def _action(name: str) -> Command:
    return lambda client, args: client.call("POST", _path(args, f"/{name}"))


def add_rollout_commands(verbs: SubParsers[argparse.ArgumentParser],
                         common: argparse.ArgumentParser) -> None:
    """`verbs` is the online-endpoint group's subparsers."""
    group = verbs.add_parser("rollout", help="guarded rollouts: canary, linear, all-at-once")
    actions = group.add_subparsers(dest="rollout_verb", metavar="ACTION", required=True)

    def add(name: str, run: Command,
            help_text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = actions.add_parser(name, parents=[common],
                                                          help=help_text)
        sub.add_argument("-n", "--name", required=True, help="endpoint name")
        sub.set_defaults(run=run)
        return sub

    _start_flags(add("start", start, "start shifting traffic to a deployment, guarded"))
    watched = add("show", show, "the latest rollout: steps, verdicts, state")
    watched.add_argument("--watch", action="store_true",
                         help="follow it until it ends (exit 0 only when promoted)")
    for name in ACTIONS:
        add(name, _action(name), f"{name} the running rollout")


def _start_flags(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--to", required=True, help="the deployment to roll out")
    add_plan_flags(sub)
    sub.add_argument("--mirror-first", type=int, metavar="PERCENT",
                     help="mirror this percent to it before any live traffic")
    sub.add_argument("--mirror-bake", type=duration, help="length of the mirror phase (120s)")
    sub.add_argument("--webhook", help="POST each event here as a CloudEvent")
    sub.add_argument("--wait", action="store_true",
                     help="block until it ends; exit 0 only when promoted")


def add_plan_flags(sub: argparse.ArgumentParser) -> None:
    """The strategy, steps and guardrails of a rollout (`rollout start`, `auto-deploy set`)."""
    sub.add_argument("--strategy", choices=("all-at-once", "canary", "linear"), default="canary")
    sub.add_argument("--canary-percent", type=int, help="canary's first step (1..50, default 10)")
    sub.add_argument("--step", type=int, help="linear's increment (10..50, default 10)")
    sub.add_argument("--steps", type=percents, help="explicit percents, e.g. 5,25,50,100")
    sub.add_argument("--bake", type=duration, default=60.0, help="wait at each step (60s)")
    sub.add_argument("--max-error-rate", type=float, help="5xx/408/424/429 share (0.01)")
    sub.add_argument("--max-p99-ms", type=float)
    sub.add_argument("--max-p95-ms", type=float)
    sub.add_argument("--max-latency-factor", type=float,
                     help="target p99 / stable p99 over the same window")
    sub.add_argument("--min-requests", type=int, help="fewest requests to judge a step (50)")
    sub.add_argument("--on-too-few", choices=("wait", "fail"),
                     help="too few requests: bake again (bounded) or roll back (wait)")
    sub.add_argument("--max-extensions", type=int, help="how often to bake again (2)")
    sub.add_argument("--min-agreement", type=float,
                     help="mirror phase: lowest share of matching shadow answers")
