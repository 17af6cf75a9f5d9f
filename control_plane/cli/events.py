"""`scoregate event-subscription create|list|show|delete|dead-letters list|replay` and
`scoregate event list`: the admin API's event routes (docs/events.md).

Event Grid's filter names: `--event-types` (any of them), `--subject-begins-with`,
`--subject-ends-with`. `create` prints the subscription with its secret, the only time it is
shown.
"""

from __future__ import annotations

import argparse
from typing import Any

from control_plane.cli.client import AdminClient
from control_plane.cli.verbs import Command, SubParsers, confirm

SUBSCRIPTIONS = "/v1/event-subscriptions"


def create(client: AdminClient, args: argparse.Namespace) -> Any:
    body: dict[str, Any] = {"name": args.name, "endpoint": args.endpoint,
                            "event_types": _types(args.event_types), "schema": args.schema}
    optional = {"subject_begins_with": args.subject_begins_with,
                "subject_ends_with": args.subject_ends_with, "max_attempts": args.max_attempts,
                "secret": args.secret}
    body.update({k: v for k, v in optional.items() if v is not None})
    return client.call("POST", SUBSCRIPTIONS, body)


def list_subscriptions(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.call("GET", SUBSCRIPTIONS)


def show(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.call("GET", f"{SUBSCRIPTIONS}/{args.name}")


def delete(client: AdminClient, args: argparse.Namespace) -> Any:
    confirm(args, f"event subscription {args.name} and its dead letters")
    return client.call("DELETE", f"{SUBSCRIPTIONS}/{args.name}")


def dead_letters(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.call("GET", f"{SUBSCRIPTIONS}/{args.name}/dead-letters")


def replay(client: AdminClient, args: argparse.Namespace) -> Any:
    body = {"ids": args.ids} if args.ids else {}
    return client.call("POST", f"{SUBSCRIPTIONS}/{args.name}/dead-letters/replay", body)


def list_events(client: AdminClient, args: argparse.Namespace) -> Any:
    types = _types(args.type)
    return client.call("GET", "/v1/events", since=args.since,
                       type=",".join(types) if types else None, limit=args.limit)


def _types(given: list[list[str]] | None) -> list[str]:
    """`--event-types A B --event-types C,D` → [A, B, C, D]."""
    return [t.strip() for group in given or () for item in group for t in item.split(",")
            if t.strip()]


def add_commands(groups: SubParsers[argparse.ArgumentParser],
                 common: argparse.ArgumentParser) -> None:
    """`groups` is the top-level subparsers (beside online-endpoint and online-deployment)."""
    subs = groups.add_parser("event-subscription",
                             help="subscribe receivers to events (Event Grid's model)")
    verbs = subs.add_subparsers(dest="event_verb", metavar="VERB", required=True)

    def add(parent: SubParsers[argparse.ArgumentParser], name: str, run: Command,
            help_text: str, named: bool = True) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = parent.add_parser(name, parents=[common], help=help_text)
        if named:
            sub.add_argument("-n", "--name", required=True, help="subscription name")
        sub.set_defaults(run=run)
        return sub

    made = add(verbs, "create", create, "subscribe an http(s) receiver")
    made.add_argument("--endpoint", required=True, help="the receiver's http(s) URL")
    made.add_argument("--event-types", nargs="+", action="append", metavar="TYPE",
                      help="deliver only these types (default: every type)")
    made.add_argument("--subject-begins-with", help="e.g. models/heart-classifier")
    made.add_argument("--subject-ends-with", help="e.g. :2")
    made.add_argument("--schema", choices=("cloudevents", "eventgrid"), default="cloudevents")
    made.add_argument("--max-attempts", type=int, help="delivery attempts before a dead "
                      "letter (1..30, default 10)")
    made.add_argument("--secret", help="HMAC key of the signature (16+ characters; "
                      "generated and shown once when absent)")
    add(verbs, "list", list_subscriptions, "every subscription", named=False)
    add(verbs, "show", show, "one subscription and its cursor")
    removed = add(verbs, "delete", delete, "delete a subscription and its dead letters")
    removed.add_argument("-y", "--yes", action="store_true", help="do not ask to confirm")
    letters = verbs.add_parser("dead-letters", help="events a subscription gave up on")
    letter_verbs = letters.add_subparsers(dest="dead_letter_verb", metavar="VERB",
                                          required=True)
    add(letter_verbs, "list", dead_letters, "list them")
    again = add(letter_verbs, "replay", replay, "send them again (all, or --id ...)")
    again.add_argument("--id", dest="ids", type=int, action="append",
                       help="a dead letter's id (repeatable; default: all)")

    log = groups.add_parser("event", help="the event log")
    log_verbs = log.add_subparsers(dest="event_log_verb", metavar="VERB", required=True)
    listed = add(log_verbs, "list", list_events, "events, oldest first", named=False)
    listed.add_argument("--since", help="an age (90s, 30m, 2h, 7d) or an RFC 3339 time")
    listed.add_argument("--type", nargs="+", action="append", metavar="TYPE",
                        help="only these types")
    listed.add_argument("--limit", type=int, help="at most this many, the newest (1000)")
