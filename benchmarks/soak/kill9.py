"""`kill -9` of `scoregate serve` at random moments during admin updates, many times: after
each restart the state is the last acknowledged one (or the one in flight at the kill), the
SQLite database passes its integrity check, and the managed instance answers again.

    python benchmarks/soak/kill9.py                 # 50 rounds, about 5 minutes
    python benchmarks/soak/kill9.py --rounds 10

Prints one line per round and a summary; exits non-zero on the first broken promise.
(tests/e2e/test_walkthrough.py has a 6-round version in the test suite.)
"""

from __future__ import annotations

import argparse
import random
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.common.children import Children, wait_until  # noqa: E402
from benchmarks.common.serve import Serve, start_serve  # noqa: E402

ENDPOINT = "crash-endpoint"


def write_config(folder: Path) -> None:
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "score.py").write_text(
        "def init():\n    pass\n\ndef run(raw_data):\n    return {'ok': True}\n")
    (folder / "endpoint.yml").write_text(f"name: {ENDPOINT}\nauth_mode: key\n"
                                         "traffic: {alpha: 100}\n")
    for name in ("alpha", "beta"):
        (folder / f"{name}.yml").write_text(
            f"name: {name}\nendpoint_name: {ENDPOINT}\nurl: http://127.0.0.1:9/score\n")
    (folder / "managed.yml").write_text(
        f"name: managed\nendpoint_name: {ENDPOINT}\n"
        "code_configuration: {code: code, scoring_script: score.py}\n")


class Updates:
    """Traffic updates one after another through the CLI, remembering what was acknowledged."""

    def __init__(self, gateway: Serve, rng: random.Random,
                 acknowledged: dict[str, int]) -> None:
        self.gateway = gateway
        self.rng = rng
        self.acknowledged = acknowledged
        self.pending = acknowledged
        self.count = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            alpha = self.rng.choice(range(0, 101, 10))
            self.pending = {"alpha": alpha, "beta": 100 - alpha}
            result = self.gateway.cli("online-endpoint", "update", "--name", ENDPOINT,
                                      "--traffic", f"alpha={alpha} beta={100 - alpha}",
                                      check=False)
            if result.returncode != 0:
                return
            self.acknowledged = self.pending
            self.count += 1


def integrity(home: Path) -> str:
    with sqlite3.connect(home / "state.db") as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def check_restart(gateway: Serve, expected: tuple[dict[str, int], ...]) -> dict[str, int]:
    shown = gateway.cli_json("online-endpoint", "show", "-n", ENDPOINT)["traffic"]
    live = {k: v for k, v in shown.items() if k != "managed"}
    if expected and live not in expected:
        raise SystemExit(f"state after restart {live} is neither acknowledged nor pending "
                         f"{expected}")
    key = gateway.key(ENDPOINT)
    wait_until(lambda: gateway.score(ENDPOINT, b"{}", key, "managed").status_code == 200,
               60, "the managed instance to come back")
    return live


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    started = time.monotonic()
    updates_total = 0
    with tempfile.TemporaryDirectory(prefix="scoregate-kill9-") as tmp, \
            Children(Path(tmp) / "logs") as children:
        home, folder = Path(tmp) / "home", Path(tmp) / "config"
        write_config(folder)
        expected: tuple[dict[str, int], ...] = ()
        for round_number in range(args.rounds + 1):
            gateway = start_serve(children, home, *([str(folder)] if round_number == 0 else []))
            live = check_restart(gateway, expected)
            ok = integrity(home)
            if ok != "ok":
                raise SystemExit(f"round {round_number}: integrity_check says {ok}")
            if round_number == args.rounds:
                break
            updates = Updates(gateway, rng, live)
            thread = threading.Thread(target=updates.run, daemon=True)
            thread.start()
            time.sleep(rng.uniform(0.5, 3.0))
            gateway.child.popen.send_signal(signal.SIGKILL)
            gateway.child.popen.wait(30)
            children.stop(gateway.child)  # its instances, by process group
            updates.stop.set()
            thread.join(120)
            updates_total += updates.count
            expected = (updates.acknowledged, updates.pending)
            print(f"round {round_number + 1:3d}: restarted into {live}, {updates.count} updates "
                  f"acknowledged, killed while {updates.pending} was pending", flush=True)
    print(f"{args.rounds} kill -9 rounds, {updates_total} acknowledged updates, every restart in "
          f"the acknowledged (or pending) state, integrity ok, managed instance back each time; "
          f"{time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
