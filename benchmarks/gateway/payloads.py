"""The two request bodies: about 200 bytes and about 10 KB of JSON, Azure ML's `{"data": ...}`."""

from __future__ import annotations

import json
from pathlib import Path

SIZES = {"200B": 200, "10KB": 10 * 1024}


def body_of_size(size: int) -> bytes:
    """A `{"data": [[...]]}` body of floats, grown to about `size` bytes (never above)."""
    row: list[float] = []
    value = 0.0
    while True:
        candidate = row + [round(value * 1.37 + 0.123456, 6)]
        if len(json.dumps({"data": [candidate]}).encode()) > size:
            return json.dumps({"data": [row]}).encode()
        row, value = candidate, value + 1


def write_payloads(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, size in SIZES.items():
        paths[name] = folder / f"body-{name}.json"
        paths[name].write_bytes(body_of_size(size))
    return paths
