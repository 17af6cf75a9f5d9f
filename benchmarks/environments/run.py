"""Environment build benchmark: uv (scoregate's builder) vs `python -m venv` + pip.

    python benchmarks/environments/run.py [--python 3.12] [--out FILE.json]

The environment is the ncd sklearn sample's (azureml-examples `cli/endpoints/online/ncd/
sklearn-diabetes/model/conda.yaml`: Python 3.12, mlflow, scikit-learn 1.7.0, numpy 2.3.1, ...),
plus the scoring server's own requirements. Everything happens in a temporary folder, with
empty caches at the start; nothing is written elsewhere. Measured, once each (a build is long
enough that one sample says what matters):

- uv cold: empty uv cache, no environment (everything downloaded);
- uv key warm: the environment of that key exists (what a second deployment, or a restart, pays);
- uv cache warm: the environment removed, the uv cache kept (a new key sharing most packages);
- pip cold / pip cache warm: `python -m venv` + `pip install -r` with an empty, then a warm, pip
  cache (pip's machine configuration is switched off: PIP_CONFIG_FILE=/dev/null);
- instance start: the environment's interpreter importing the scoring server, scikit-learn and
  mlflow.pyfunc (twice), beside the gateway's own interpreter importing the server alone
  (today's start): what a cached environment adds to a deployment's start.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from control_plane.environments import gc, interpreters  # noqa: E402
from control_plane.environments.builder import Builder  # noqa: E402
from control_plane.environments.conda import parse_conda_text  # noqa: E402
from control_plane.environments.interpreters import PythonRequest  # noqa: E402
from control_plane.environments.key import SERVER_REQUIREMENTS  # noqa: E402
from control_plane.environments.requirements import normalize  # noqa: E402

NCD_SKLEARN_CONDA = """channels:
- conda-forge
dependencies:
- python=3.12
- pip
- pip:
  - mlflow
  - scikit-learn==1.7.0
  - cloudpickle==3.1.1
  - psutil==7.0.0
  - numpy==2.3.1
  - azureml-inference-server-http
  - azureml-ai-monitoring
name: mlflow-env
"""
START = "import scoring_servers.azureml.server, sklearn, mlflow.pyfunc"


def timed(what: str, action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    elapsed = time.monotonic() - started
    print(f"{what:<28} {elapsed * 1000:11.1f} ms", flush=True)
    return elapsed


def run(args: list[str], env: dict[str, str] | None = None) -> None:
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", default="3.12")
    parser.add_argument("--out", type=Path,
                        default=REPO_ROOT / "benchmarks" / "results" / "environments.json")
    parser.add_argument("--no-pip", action="store_true", help="measure uv only")
    options = parser.parse_args()
    major, minor = (int(n) for n in options.python.split("."))
    conda = parse_conda_text(NCD_SKLEARN_CONDA, "ncd sklearn conda.yaml")
    requirements = normalize(conda.requirements)
    choice = interpreters.choose(interpreters.discover(), PythonRequest(major, minor), strict=True)
    python = choice.interpreter
    print(f"Python {python.version_text} ({python.path}); {len(requirements)} requirements")
    results: dict[str, float | int | str] = {"python": python.version_text}
    with tempfile.TemporaryDirectory(prefix="scoregate-env-bench-") as temp:
        root = Path(temp)
        builder = Builder(root / "home" / "environments", root / "uv-cache")
        built = []
        results["uv_cold_s"] = timed("uv cold", lambda: built.append(
            builder.build(python, requirements)))
        env = built[0]
        results["packages"] = len(env.ready["packages"])
        results["size_mb"] = round(env.ready["size_bytes"] / 2**20, 1)
        results["uv_key_warm_s"] = timed("uv key warm (ready)", lambda: builder.build(
            python, requirements))
        results["instance_start_s"] = timed("env python: import server", lambda: run(
            [str(env.python), "-I", "-c", START]))
        results["instance_start_again_s"] = timed("  the same, again", lambda: run(
            [str(env.python), "-I", "-c", START]))
        results["gateway_python_start_s"] = timed("gateway python: import server", lambda: run(
            [sys.executable, "-c", "import scoring_servers.azureml.server"]))
        gc.remove(builder, env.key)
        results["uv_cache_warm_s"] = timed("uv cache warm", lambda: builder.build(
            python, requirements))

        reqs = root / "requirements.txt"
        reqs.write_text("\n".join((*requirements, *SERVER_REQUIREMENTS)) + "\n")
        pip_env = {**os.environ, "PIP_CONFIG_FILE": os.devnull,
                   "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        for key in ("PIP_FIND_LINKS", "PIP_CERT", "PYTHONPATH"):
            pip_env.pop(key, None)

        def venv_pip(folder: Path) -> None:
            run([str(python.path), "-m", "venv", str(folder)], pip_env)
            run([str(folder / "bin" / "pip"), "install", "-q", "--cache-dir",
                 str(root / "pip-cache"), "-r", str(reqs)], pip_env)

        if options.no_pip:
            return _write(options.out, results)
        results["pip_cold_s"] = timed("venv + pip cold", lambda: venv_pip(root / "pip-1"))
        results["pip_cache_warm_s"] = timed("venv + pip cache warm",
                                            lambda: venv_pip(root / "pip-2"))
    return _write(options.out, results)


def _write(out: Path, results: dict[str, float | int | str]) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
