"""uv's output, read as build phases for a person watching (`online-deployment create`).

uv prints one line per step when its output is not a terminal: `Resolved 7 packages in
577ms`, `Downloading uvloop (3.9MiB)`, `Prepared 7 packages in 116ms`, `Installed 7 packages
in 16ms`, `Bytecode compiled 1520 files in 40s`. Lines we do not know are ignored (they still
go to the build log).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

PHASES = ("creating", "resolving", "downloading", "installing", "compiling", "checking", "ready")


@dataclass(frozen=True)
class Progress:
    phase: str  # one of PHASES
    packages: int | None = None  # how many packages the resolution has (once resolved)
    detail: str = ""  # the uv line, or what we are doing


ProgressCallback = Callable[[Progress], None]

_RESOLVED = re.compile(r"^Resolved (\d+) packages?")
_DOWNLOADING = re.compile(r"^Downloading (\S+)")
_PREPARED = re.compile(r"^Prepared (\d+) packages?")
_INSTALLED = re.compile(r"^(?:Installed|Audited) (\d+) packages?")
_COMPILED = re.compile(r"^Bytecode compiled")


def read_line(line: str, packages: int | None) -> Progress | None:
    """The progress one line of uv's output tells, given the package count known so far."""
    text = line.strip()
    if match := _RESOLVED.match(text):
        return Progress("downloading", int(match[1]), text)
    if match := _DOWNLOADING.match(text):
        return Progress("downloading", packages, text)
    if _PREPARED.match(text):
        return Progress("installing", packages, text)
    if match := _INSTALLED.match(text):
        return Progress("compiling", int(match[1]), text)
    if _COMPILED.match(text):
        return Progress("compiling", packages, text)
    return None
