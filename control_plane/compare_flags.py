"""`scoregate serve` flags for shadow comparison, read into the gateway's `CompareSettings`.

The gateway validates the settings (`SettingsError`); here its message becomes the CLI error
that names the flags.
"""

from __future__ import annotations

import argparse

from gateway import CompareSettings, SettingsError


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    """The `--compare-*` flags (read with `compare_from_args`)."""
    default = CompareSettings()
    parser.add_argument("--compare-percent", type=float, default=default.sample_percent,
                        help="share of mirror copies whose answer is compared with the live "
                             "one (0 turns comparison off; default 100)")
    parser.add_argument("--compare-tolerance", type=float, default=default.rel_tolerance,
                        help="relative tolerance for numbers (default 1e-6)")
    parser.add_argument("--compare-max-body-kb", type=int,
                        default=default.max_body_bytes // 1024,
                        help="larger answers are not compared (default 64)")
    parser.add_argument("--compare-keep", type=int, default=default.keep_mismatches,
                        help="mismatching pairs kept per deployment (default 50)")


def compare_from_args(args: argparse.Namespace) -> CompareSettings:
    try:
        return CompareSettings(sample_percent=args.compare_percent,
                               rel_tolerance=args.compare_tolerance,
                               max_body_bytes=args.compare_max_body_kb * 1024,
                               keep_mismatches=args.compare_keep)
    except SettingsError as error:
        raise SystemExit(f"error: {error}; check the --compare-* flags") from None
