"""The `scoregate` command: `serve` runs the server, every other verb is the CLI.

The choice is made here, before either is imported, so the CLI (which talks to the server over
HTTP only) never imports what runs the server, and `scoregate online-endpoint ...` does not
pay for loading it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["serve"]:
        return _serve(args[1:])
    from control_plane.cli.main import main as cli_main

    return cli_main(args)


def _serve(argv: list[str]) -> int:
    import argparse

    from control_plane import serve

    parser = argparse.ArgumentParser(prog="scoregate serve",
                                     description="Run the gateway, its admin API and instances.")
    serve.add_arguments(parser)
    return serve.main(parser.parse_args(argv))
