"""A stand-in gateway: runs a Supervisor with 2 stand-in instances, writes their pids, waits.

The test `kill -9`s this process and checks that the instances die with it (PDEATHSIG).
Usage: supervisor_parent.py <work-dir> <pids.json>
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import uvloop

from control_plane.instances.supervisor import Supervisor
from control_plane.specs.resources import DeploymentSpec

STANDIN = Path(__file__).with_name("standin_server.py")


def command(spec: DeploymentSpec, fd: int, python: Path | None = None) -> list[str]:
    return [str(python or sys.executable), str(STANDIN), "--fd", str(fd)]


async def main(work: Path, pids_file: Path) -> None:
    supervisor = Supervisor(work / "logs", lambda: None, lambda _id: 0, command,
                            work_root=work / "run")
    spec = DeploymentSpec(name="blue", endpoint_name="shop", code_dir=str(work),
                          scoring_script="score.py", instance_count=2)
    await supervisor.reconcile({"shop/blue": spec})
    if not await supervisor.wait_ready("shop/blue", 60):
        raise SystemExit("instances did not become ready")
    pids = [s.pid for s in supervisor.status("shop/blue")]
    temporary = pids_file.with_suffix(".tmp")
    temporary.write_text(json.dumps(pids))
    temporary.replace(pids_file)
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    uvloop.run(main(Path(sys.argv[1]), Path(sys.argv[2])))
