"""CPU time of a process and all its descendants, from /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid_dir: Path) -> list[str] | None:
    try:
        text = (pid_dir / "stat").read_text()
    except OSError:  # the process ended meanwhile
        return None
    return text[text.rindex(")") + 2:].split()  # fields from the 3rd on; comm may hold spaces


def tree_cpu_seconds(root_pid: int) -> float:
    """utime + stime of `root_pid` and every live descendant."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        fields = _stat_fields(pid_dir)
        if fields is None:
            continue
        pid = int(pid_dir.name)
        parents[pid] = int(fields[1])  # ppid is the 4th field
        ticks[pid] = int(fields[11]) + int(fields[12])  # utime, stime: the 14th and 15th
    total = 0
    for pid, tick_count in ticks.items():
        ancestor = pid
        while ancestor not in (0, 1, root_pid) and ancestor in parents:
            ancestor = parents[ancestor]
        if ancestor == root_pid:
            total += tick_count
    return total / CLOCK_TICKS
