"""Instance logs: get-logs reads a bounded part of a big log, and a running instance's log is
rotated by size (through the supervisor's pipe), with get-logs reaching across the rotation.

Bytes read are counted by the kernel (/proc/thread-self/io `rchar`), not timed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from control_plane.instances import logs as instance_logs
from control_plane.instances.supervisor import Supervisor, SupervisorTimings
from control_plane.specs.resources import DeploymentSpec
from tests.support.loops import run_bounded

KEY = "shop/blue"
LONG_LINE = b"x" * 100_000 + b"\n"
TIMINGS = SupervisorTimings(startup_poll_s=0.05, backoff_initial_s=0.3, backoff_max_s=2.0,
                            stop_grace_s=3.0)


def bytes_read_by_this_thread() -> int:
    for line in Path("/proc/thread-self/io").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == "rchar":
            return int(value)
    raise AssertionError("no rchar in /proc/thread-self/io")


def test_tail_of_a_big_log_of_long_lines_reads_a_bounded_part(tmp_path: Path) -> None:
    log = tmp_path / "blue-0.log"
    size = 3 * instance_logs.TAIL_MAX_BYTES
    with open(log, "wb") as file:
        for _ in range(size // len(LONG_LINE) + 1):
            file.write(LONG_LINE)
    before = bytes_read_by_this_thread()
    lines = instance_logs.tail(log, 5000)
    read = bytes_read_by_this_thread() - before
    assert read <= instance_logs.TAIL_MAX_BYTES + 64 * 1024, read  # not the whole file
    assert 0 < sum(len(line) + 1 for line in lines) <= instance_logs.TAIL_MAX_BYTES
    assert lines[-1] == LONG_LINE.decode().rstrip("\n")  # the newest line is whole


def test_get_logs_caps_lines_and_bytes_across_instances(tmp_path: Path) -> None:
    folder = instance_logs.deployment_log_dir(tmp_path, "shop", "blue")
    folder.mkdir(parents=True)
    (folder / "blue-3.log").write_text("".join(f"line {n}\n" for n in range(200_000)))
    text = instance_logs.deployment_logs(tmp_path, "shop", "blue", 10**9)
    assert len(text.splitlines()) == instance_logs.TAIL_MAX_LINES
    assert text.endswith("[blue-3] line 199999\n")
    for index in range(3):  # 3 MB each, newer than blue-3
        (folder / f"blue-{index}.log").write_bytes(LONG_LINE * 30)
    text = instance_logs.deployment_logs(tmp_path, "shop", "blue", 10**9)
    assert len(text.encode()) <= instance_logs.TAIL_MAX_BYTES + 1024
    assert "[blue-3]" not in text  # the budget went to the newest logs


def test_a_running_instance_log_is_rotated_by_size_and_get_logs_reads_across(
        tmp_path: Path) -> None:
    """The script prints 40 × the cap at init and once per request; the log never passes
    its cap, one rotated generation is kept, and no restart was needed for it."""
    cap = 64 * 1024
    code = tmp_path / "code"
    code.mkdir()
    (code / "score.py").write_text(
        "import sys\n\n"
        "def flood(tag):\n"
        f"    for n in range({40 * cap // 1000}):\n"
        "        sys.stdout.write(tag + ' ' + str(n).rjust(8, '0') + '.' * 980 + '\\n')\n"
        "    print(tag + ' done', flush=True)\n\n"
        "def init():\n    flood('init')\n\n"
        "def run(raw_data):\n    flood('run')\n    return [1]\n")
    spec = DeploymentSpec(name="blue", endpoint_name="shop", code_dir=str(code),
                          scoring_script="score.py")
    folder = tmp_path / "logs" / "shop" / "blue"

    async def main() -> None:
        supervisor = Supervisor(tmp_path / "logs", lambda: None, lambda _id: 0,
                                work_root=tmp_path / "run", timings=TIMINGS,
                                log_max_bytes=cap)
        try:
            await supervisor.reconcile({KEY: spec})
            assert await supervisor.wait_ready(KEY, 60), supervisor.status(KEY)
            assert "init done" in supervisor.logs(KEY, lines=5)
            assert supervisor.status(KEY)[0].restarts == 0
            sizes = [path.stat().st_size for path in folder.iterdir()]
            assert sorted(p.name for p in folder.iterdir()) == ["blue-0.log", "blue-0.log.1"]
            assert max(sizes) <= cap, sizes
            tail = supervisor.logs(KEY, lines=30).splitlines()
            assert len(tail) == 30 and "[blue-0] init done" in tail
            flood = [line for line in tail if line.startswith("[blue-0] init 0")]
            assert flood and all(len(line) == len("[blue-0] init ") + 8 + 980 for line in flood)
        finally:
            await supervisor.close()

    run_bounded(main())


def test_the_log_writer_never_passes_its_cap(tmp_path: Path) -> None:
    log = instance_logs.RotatingLog(tmp_path / "blue-0.log", limit=1000)
    try:
        for size in (10, 999, 1, 5000, 3):
            log.write(b"y" * size)
            assert (tmp_path / "blue-0.log").stat().st_size <= 1000
    finally:
        log.close()
    total = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert total <= 2000 and (tmp_path / "blue-0.log.1").exists()


def test_tail_reaches_into_the_rotated_log(tmp_path: Path) -> None:
    log = instance_logs.RotatingLog(tmp_path / "blue-0.log", limit=100)
    try:
        for n in range(12):  # 9 bytes each: the 12th starts a new file
            log.write(f"line {n:03d}\n".encode())
    finally:
        log.close()
    assert (tmp_path / "blue-0.log").read_text() == "line 011\n"
    assert instance_logs.instance_tail(tmp_path / "blue-0.log", 3, 10_000) == [
        "line 009", "line 010", "line 011"]


def test_pump_copies_everything_and_ends_with_the_pipe(tmp_path: Path) -> None:
    log = instance_logs.RotatingLog(tmp_path / "x-0.log")
    proc = subprocess.Popen([sys.executable, "-c", "print('a' * 100000); print('the end')"],
                            stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        thread = instance_logs.pump(proc.stdout, log)
        proc.wait(30)
        thread.join(30)
        assert not thread.is_alive()
    finally:
        proc.kill()
        proc.wait()
        log.close()
    assert (tmp_path / "x-0.log").read_text() == "a" * 100000 + "\nthe end\n"
