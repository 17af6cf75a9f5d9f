"""CPU time and memory of a process (and its children) read from /proc.

CPU is utime + stime of /proc/<pid>/stat, in seconds; sampled before and after a load run and
divided by the requests completed, it gives CPU µs per request.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads), in seconds."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # fields 14 and 15 of stat(5)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def children_of(pid: int) -> list[int]:
    """Direct children of `pid` (e.g. nginx's workers under its master)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if int(_stat_fields(int(entry))[1]) == pid:
                found.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return found


@dataclass(frozen=True)
class CpuProbe:
    """CPU seconds of a fixed set of processes, e.g. nginx's master and its worker."""

    pids: tuple[int, ...]

    @classmethod
    def with_children(cls, pid: int) -> CpuProbe:
        return cls((pid, *children_of(pid)))

    def total(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def rss(self) -> int:
        return sum(rss_bytes(pid) for pid in self.pids)


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces and parentheses: split after its last ")".
    return text[text.rindex(")") + 2:].split()  # index 0 is field 3 (state)


def tree_cpu_seconds(root_pid: int) -> float:
    """utime + stime of `root_pid` and every live descendant (e.g. `mlflow models serve` and
    the uvicorn it runs as a child)."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat_fields(int(entry))
        except OSError:  # the process ended meanwhile
            continue
        parents[int(entry)] = int(fields[1])  # ppid is the 4th field
        ticks[int(entry)] = int(fields[11]) + int(fields[12])  # utime, stime: the 14th and 15th
    total = 0
    for pid, tick_count in ticks.items():
        ancestor = pid
        while ancestor not in (0, 1, root_pid) and ancestor in parents:
            ancestor = parents[ancestor]
        if ancestor == root_pid:
            total += tick_count
    return total / _CLOCK_TICKS
