"""`scoregate`: the verbs of `az ml online-endpoint|online-deployment|model` (and `serve`, which
`control_plane.entry` runs before this parser is built: the CLI never imports the server).

The CLI runs on the server's machine, so it reads YAML itself with `specs.loader` (paths
resolve against each file's folder, `--name` / `--endpoint-name` override the file's) and
sends the resulting spec as JSON to the admin API (`client.py`). User errors print one line on
stderr and exit 1 (argparse's usage errors exit 2); only this module turns errors into codes.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from control_plane.cli import deployments, endpoints, environments, events, models
from control_plane.cli import output as cli_output
from control_plane.cli.client import URL_ENV, AdminClient, Raw
from control_plane.errors import OperationFailed, ScoregateError

__all__ = ["EXIT_BROKEN_PIPE", "build_parser", "main"]
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a tool `head` cut off


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI; output piped into a reader that stops early (`| head`) ends it quietly with
    EXIT_BROKEN_PIPE instead of a BrokenPipeError traceback (the Python docs' recipe)."""
    try:
        try:
            code = _main(argv)
        finally:  # argparse's --help exits through SystemExit: its output is flushed here too
            sys.stdout.flush()
    except BrokenPipeError:
        _stdout_to_devnull()
        return EXIT_BROKEN_PIPE
    return code


def _stdout_to_devnull() -> None:
    """The reader is gone: point stdout at /dev/null so the interpreter's own flush at exit
    does not fail again (and print "Exception ignored ... BrokenPipeError")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _main(argv: Sequence[str] | None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["serve"]:
        print("scoregate: error: `serve` runs through `python -m control_plane serve` (the "
              "`scoregate` command: control_plane.entry:main)", file=sys.stderr)
        return 2
    args = build_parser().parse_args(args_list)
    if args.command is None:
        build_parser().print_usage(sys.stderr)
        print("scoregate: error: choose online-endpoint, online-deployment, model, "
              "event-subscription, event, environment or serve",
              file=sys.stderr)
        return 2
    try:
        with AdminClient.discover(args.url) as client:
            result = args.run(client, args)
        if isinstance(result, Raw):
            sys.stdout.write(result.text if result.text.endswith("\n") or not result.text
                             else result.text + "\n")
        elif result is not None:
            text = cli_output.render(cli_output.query(result, args.query), args.output)
            print(text)
        return 0
    except ScoregateError as error:
        print(f"error: {_one_line(error)}", file=sys.stderr)
        if isinstance(error, OperationFailed) and error.details:
            print(error.details.rstrip("\n"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _one_line(error: ScoregateError) -> str:
    text = " ".join(str(error).split())
    rule = getattr(error, "rule", None)
    return f"{text} [rule: {rule}]" if rule and f"rule: {rule}" not in text else text


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=f"admin API URL (default ${URL_ENV}, else "
                                      "$SCOREGATE_HOME/server.json)")
    common.add_argument("-o", "--output", choices=cli_output.FORMATS, default="json")
    common.add_argument("--query", help="JMESPath query applied to the answer, as in az")
    parser = argparse.ArgumentParser(prog="scoregate", description="Online ML inference "
                                     "gateway with Azure ML online-endpoint semantics.")
    groups = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups.add_parser("serve", help="run the gateway (see `scoregate serve --help`)")
    endpoints.add_commands(groups.add_parser("online-endpoint", help="manage endpoints"), common)
    deployments.add_commands(groups.add_parser("online-deployment", help="manage deployments"),
                             common)
    models.add_commands(groups.add_parser("model", help="manage registered models"), common)
    events.add_commands(groups, common)
    environments.add_commands(groups.add_parser("environment", help="registered and built "
                                                "environments"), common)
    return parser
