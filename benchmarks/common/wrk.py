"""Run wrk with a Lua script that POSTs a fixed body, optionally at a fixed rate, and read
its results as JSON.

wrk's `done()` hook prints one JSON line (exact percentiles from its histogram), so nothing
depends on wrk's human output. wrk cannot fix a request rate and wrk2 is not in Debian, so
`rate_per_s` paces requests with wrk's `delay()` hook: each thread hands out send slots on an
absolute schedule (clock_gettime through LuaJIT's ffi), and a connection waits for its slot.
Latency is measured from the send, as wrk always does.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common.children import Children

_MARK = "WRK_JSON "

_LUA = r"""
local body_file = io.open(%(body_path)s, "rb")
wrk.method = "POST"
wrk.body = body_file:read("*a")
body_file:close()
%(headers)s
local rate = %(rate_per_thread)s
if rate > 0 then
  local ffi = require("ffi")
  ffi.cdef[[
    typedef struct { long tv_sec; long tv_nsec; } wrk_timespec;
    int clock_gettime(int clock_id, wrk_timespec *tp);
  ]]
  local ts = ffi.new("wrk_timespec")
  local interval = 1000.0 / rate
  local next_slot = nil
  local function now_ms()
    ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1000.0 + tonumber(ts.tv_nsec) / 1e6
  end
  function delay()
    local now = now_ms()
    if next_slot == nil or next_slot < now - 100.0 then
      next_slot = now  -- start, or never burst to catch up more than 100 ms of backlog
    end
    local wait = next_slot - now
    next_slot = next_slot + interval
    return math.floor(wait + 0.5)
  end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"requests": %%d, "duration_us": %%d, "bytes": %%d, ' ..
    '"p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "mean_us": %%f, "max_us": %%d, ' ..
    '"errors": {"connect": %%d, "read": %%d, "write": %%d, "status": %%d, "timeout": %%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass(frozen=True)
class Load:
    """What wrk sends and how hard: the same for every target of a comparison."""

    body_path: Path
    headers: Mapping[str, str] = field(default_factory=dict)
    connections: int = 32
    duration_s: float = 5.0
    threads: int = 1
    rate_per_s: float = 0.0  # 0: as fast as the connections allow (saturation)
    timeout_s: float = 5.0


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: Mapping[str, int]

    @property
    def throughput(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk)")
    return path


def lua_script(load: Load) -> str:
    headers = "\n".join(f"wrk.headers[{_lua_str(k)}] = {_lua_str(v)}"
                        for k, v in load.headers.items())
    return _LUA % {
        "body_path": _lua_str(str(load.body_path)),
        "headers": headers,
        "rate_per_thread": repr(load.rate_per_s / load.threads),
        "mark": _MARK,
    }


def run_wrk(url: str, load: Load, work_dir: Path, children: Children) -> WrkResult:
    """Run one wrk load against `url` as a child process (stopped even on Ctrl-C)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    script = work_dir / "load.lua"
    script.write_text(lua_script(load))
    output = work_dir / "wrk.out"
    output.unlink(missing_ok=True)
    args = [wrk_binary(), f"-t{load.threads}", f"-c{load.connections}",
            f"-d{max(1, round(load.duration_s))}s", f"--timeout={load.timeout_s:g}s",
            "-s", str(script), url]
    child = children.start(args, name="wrk", log_path=output)
    try:
        child.popen.wait(load.duration_s + 60)
    finally:
        children.stop(child)
    return parse_output(output.read_text(errors="replace"))


def parse_output(stdout: str) -> WrkResult:
    for line in stdout.splitlines():
        if line.startswith(_MARK):
            data = json.loads(line[len(_MARK):])
            return WrkResult(
                requests=int(data["requests"]),
                duration_s=data["duration_us"] / 1e6,
                p50_ms=data["p50_us"] / 1000.0,
                p90_ms=data["p90_us"] / 1000.0,
                p99_ms=data["p99_us"] / 1000.0,
                mean_ms=data["mean_us"] / 1000.0,
                max_ms=data["max_us"] / 1000.0,
                errors={k: int(v) for k, v in data["errors"].items()},
            )
    raise RuntimeError(f"wrk printed no result line:\n{stdout[-2000:]}")


def _lua_str(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal here
