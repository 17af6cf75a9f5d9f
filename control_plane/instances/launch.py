"""Starting and stopping one managed instance process, with no way to leave an orphan.

Each child runs in its own session (so its whole process group can be signalled), and asks
the kernel for SIGKILL when its parent dies (`PR_SET_PDEATHSIG`), so even `kill -9` of the
gateway takes its instances along. The listening socket (a Unix socket in an owner-only
folder: no other local user can reach it) is bound here and handed down by file descriptor,
so an instance keeps its address across restarts. Its stdout and stderr come back through a
pipe, so the supervisor can rotate its log by size while it runs (`logs.RotatingLog`), and an
optional memory limit is set as RLIMIT_AS before the program starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import resource
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from control_plane.specs.resources import DeploymentSpec

# (spec, fd of the listening socket, the environment's python or None) -> argv
CommandBuilder = Callable[[DeploymentSpec, int, Path | None], list[str]]

_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: no dlopen after fork
_PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # where scoring_servers/ is importable
_OURS = "SCOREGATE_"  # the server's settings and secrets: never passed on to an instance


def default_command(spec: DeploymentSpec, fd: int, python: Path | None = None) -> list[str]:
    """`python -m scoring_servers.azureml --fd N --code DIR --entry SCRIPT`, or for an MLflow
    model without a script `python -m scoring_servers.mlflow --fd N` (it finds the model
    under AZUREML_MODEL_DIR, as Azure's no-code deployment does)."""
    server = "scoring_servers.mlflow" if spec.serves_mlflow_model else "scoring_servers.azureml"
    argv = [*interpreter(python), "-m", server, "--fd", str(fd)]
    if spec.code_dir:
        argv += ["--code", spec.code_dir]
    if spec.scoring_script:
        argv += ["--entry", spec.scoring_script]
    return argv


def interpreter(python: Path | None) -> list[str]:
    """The gateway's own interpreter, or a deployment environment's, isolated (`-I`: no
    PYTHONPATH, no user site-packages; the environment holds its own copy of the scoring
    server) and unbuffered (`-I` ignores PYTHONUNBUFFERED)."""
    return [sys.executable] if python is None else [str(python), "-I", "-u"]


def bind_listener(path: Path, backlog: int = 1024) -> socket.socket:
    """A listening Unix socket at `path` (mode 0600), kept for the instance's whole life."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o600)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def instance_env(spec: DeploymentSpec, model_dir: Path,
                 base: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ without scoregate's own variables (the admin token, the state folder...) +
    the deployment's variables + what Azure's inference server is given."""
    inherited = os.environ if base is None else base
    env = {name: value for name, value in inherited.items() if not name.startswith(_OURS)}
    env.update(spec.environment_variables)
    env["AZUREML_MODEL_DIR"] = str(model_dir)
    if spec.scoring_script:
        env["AZUREML_ENTRY_SCRIPT"] = spec.scoring_script
    env.setdefault("WORKER_COUNT", str(spec.request_settings.max_concurrent_requests_per_instance))
    if spec.batching is not None:  # read by scoring_servers/batching.py
        env["SCOREGATE_BATCHING"] = f"{spec.batching.max_batch_size},{spec.batching.max_latency_ms}"
    env.setdefault("PYTHONUNBUFFERED", "1")
    paths = [str(_PACKAGE_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def spawn(argv: list[str], env: Mapping[str, str], fd: int,
          memory_limit_bytes: int | None = None) -> subprocess.Popen[bytes]:
    """Start the instance with stdout+stderr on one pipe (`proc.stdout`), for the caller to
    write to its log.

    Must run on the thread that lives as long as the gateway (the event loop's): Linux sends
    PDEATHSIG when the *thread* that forked the child exits, not only the process.
    """
    return subprocess.Popen(argv, env=dict(env), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, pass_fds=(fd,),
                            start_new_session=True,
                            preexec_fn=_preexec(signal.SIGKILL, memory_limit_bytes))


def _preexec(sig: int, memory_limit_bytes: int | None) -> Callable[[], None]:
    """die_with_parent, then RLIMIT_AS (soft and hard: the instance cannot raise it again)."""
    set_pdeathsig = die_with_parent(sig)

    def preexec() -> None:
        set_pdeathsig()
        if memory_limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))

    return preexec


def die_with_parent(sig: int) -> Callable[[], None]:
    """A preexec_fn asking the kernel to send the child `sig` when its parent dies (exiting at
    once if the parent already has). Call it in the parent, on the thread that will outlive
    the child: the kernel sends the signal when the thread that forked exits."""
    parent = os.getpid()

    def set_pdeathsig() -> None:
        _prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return set_pdeathsig


async def wait_exit(proc: subprocess.Popen[bytes], poll_s: float = 0.1) -> int:
    """Wait for the process to exit without a thread: a pidfd where the kernel has one."""
    if proc.poll() is not None:  # checked first: pidfd_open of a reaped pid could be reused
        return int(proc.returncode)
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        while proc.poll() is None:
            await asyncio.sleep(poll_s)
        return int(proc.returncode)
    loop = asyncio.get_running_loop()
    exited = asyncio.Event()
    try:
        loop.add_reader(pidfd, exited.set)
        try:
            if proc.poll() is None:
                await exited.wait()
        finally:
            loop.remove_reader(pidfd)
    finally:
        os.close(pidfd)
    return int(proc.wait())


async def stop_group(proc: subprocess.Popen[bytes], grace_s: float) -> int:
    """SIGTERM the process group, wait up to `grace_s`, then SIGKILL the group; reap."""
    if proc.poll() is None:
        signal_group(proc.pid, signal.SIGTERM)
        # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that arrives
        # as the process exits, and the instance loop it runs in would then start a new one.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                await wait_exit(proc)
    signal_group(proc.pid, signal.SIGKILL)  # also children the instance left behind
    return await wait_exit(proc)


def signal_group(pid: int, sig: int) -> None:
    """Signal a process group that may already be gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
