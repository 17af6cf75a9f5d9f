"""`scoregate serve --compare-*`: flags into the gateway's CompareSettings, bad values into a
CLI error naming the flags."""

from __future__ import annotations

import argparse

import pytest

from control_plane.compare_flags import add_compare_arguments, compare_from_args


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_compare_arguments(parser)
    return parser.parse_args(argv)


def test_flags_become_settings() -> None:
    settings = compare_from_args(parse("--compare-percent", "25", "--compare-tolerance", "1e-3",
                                       "--compare-max-body-kb", "8", "--compare-keep", "3"))
    assert (settings.sample_percent, settings.rel_tolerance, settings.max_body_bytes,
            settings.keep_mismatches) == (25.0, 1e-3, 8 * 1024, 3)


@pytest.mark.parametrize("argv", [("--compare-percent", "200"), ("--compare-keep", "-1"),
                                  ("--compare-max-body-kb", "0")])
def test_bad_values_are_a_cli_error_naming_the_flags(argv: tuple[str, str]) -> None:
    with pytest.raises(SystemExit, match=r"^error: .*\(comparison settings\); check the "
                                         r"--compare-\* flags$"):
        compare_from_args(parse(*argv))
