"""What a cached environment adds to a deployment's start, through the whole product.

    python benchmarks/environments/deployment_start.py [--rounds 5] [--out FILE.json]

Runs `scoregate serve` in a temporary state folder and times `online-deployment create` (the
CLI returns once the deployment's instance is ready and the snapshot published) of the same
score.py, alternately:
- on the gateway's own interpreter (no environment: today's path), and
- in its own environment (scikit-learn + numpy + six, the scoring script importing them),
  built once before the rounds, so each create finds it cached;
- and, for scale, the gateway's interpreter importing the same packages (what the cached
  environment's extra time would be compared against if the gateway had them installed).
Each deployment is deleted after it is timed. Medians are reported; the figure that matters is
`cached_env - gateway_same_imports` (target: at most 2 s). Nothing is written outside the
temporary folder (uv's cache included).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.common.children import Children  # noqa: E402
from benchmarks.common.serve import Serve, start_serve  # noqa: E402

SCORE = """\
import json
{imports}

def init():
    pass


def run(raw_data):
    return {{"ok": True}}
"""
CONDA = "name: bench\ndependencies:\n  - numpy\n  - scikit-learn\n  - pip:\n    - six\n"
IMPORTS = "import numpy, six, sklearn.linear_model"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scoregate-bench-") as temp:
        figures = run(Path(temp), args.rounds)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


def run(folder: Path, rounds: int) -> dict[str, object]:
    (folder / "plain").mkdir()
    (folder / "plain" / "score.py").write_text(SCORE.format(imports=""))
    (folder / "heavy").mkdir()
    (folder / "heavy" / "score.py").write_text(SCORE.format(imports=IMPORTS))
    (folder / "conda.yml").write_text(CONDA)
    (folder / "endpoint.yml").write_text("name: bench\nauth_mode: key\n")
    home = folder / "home"
    flags = ("--environments", str(home / "environments"), "--uv-cache", str(home / "uv-cache"))
    with Children(folder / "logs") as children:
        serve = start_serve(children, home, flags=flags)
        serve.cli("online-endpoint", "create", "-f", str(folder / "endpoint.yml"))
        started = time.monotonic()
        serve.cli("environment", "build", "--conda-file", str(folder / "conda.yml"),
                  timeout=1800)
        cold = time.monotonic() - started
        cases = {"gateway": ("plain", False), "gateway_same_imports": ("heavy", False),
                 "cached_env": ("heavy", True)}
        times: dict[str, list[float]] = {name: [] for name in cases}
        for index in range(rounds):
            for name, (code, with_env) in cases.items():
                times[name].append(_create(serve, folder, f"d{index}{name[:3]}", code, with_env))
    medians = {name: round(statistics.median(values), 3) for name, values in times.items()}
    return {"rounds": rounds, "environment_build_s": round(cold, 1),
            "create_s_median": medians,
            "create_s_all": {k: [round(v, 3) for v in vs] for k, vs in times.items()},
            "cached_env_adds_s": round(medians["cached_env"] - medians["gateway"], 3),
            "cached_env_adds_over_same_imports_s": round(
                medians["cached_env"] - medians["gateway_same_imports"], 3)}


def _create(serve: Serve, folder: Path, name: str, code: str, with_env: bool) -> float:
    """Seconds `online-deployment create` took (it waits until the deployment is ready)."""
    text = (f"name: {name}\nendpoint_name: bench\n"
            f"code_configuration: {{code: {folder / code}, scoring_script: score.py}}\n"
            "readiness_probe: {initial_delay: 0, period: 1}\n")
    if with_env:
        text += f"environment:\n  conda_file: {folder / 'conda.yml'}\n"
    path = folder / f"{name}.yml"
    path.write_text(text)
    started = time.monotonic()
    serve.cli("online-deployment", "create", "-f", str(path), timeout=1800)
    took = time.monotonic() - started
    serve.cli("online-deployment", "delete", "--name", name, "--endpoint-name", "bench", "--yes")
    return took


if __name__ == "__main__":
    raise SystemExit(main())
