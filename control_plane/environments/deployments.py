"""Which environment each deployment runs in, built before its instances start.

Azure's order of precedence: the deployment's `environment` (an inline `conda_file`, or a
reference `azureml:name:version` / `azureml:name@latest` to a registered environment); for an
MLflow model without one, the model's own `python_env.yaml` / `conda.yaml` /
`requirements.txt`; otherwise the gateway's own interpreter (no build at all).

`DeploymentEnvironments.prepare` is what the runtime calls before reconciling instances: it
builds what is missing (blocking: the runtime runs it in a thread) and answers, per deployment,
the interpreter its instances start with, or why it cannot run. A build that failed is not
retried until the deployment changes (or `serve` restarts), so an unrelated write does not
pay for the same failing resolution again. Progress and outcome per deployment are kept for
`online-deployment show` and `get-logs`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from control_plane.environments import captured
from control_plane.environments.builder import Builder, BuildFailed
from control_plane.environments.conda import parse_conda_text
from control_plane.environments.gc import DEFAULT_GRACE_S
from control_plane.environments.interpreters import Interpreter, choose, discover
from control_plane.environments.progress import Progress
from control_plane.environments.requirements import (
    EnvironmentRequest,
    normalize,
    read_conda_file,
    read_mlflow_model,
)
from control_plane.environments.service import EnvironmentService
from control_plane.errors import ScoregateError
from control_plane.specs.resources import DeploymentSpec
from control_plane.specs.schema import is_cloud_environment

GATEWAY, BUILDING, READY, FAILED = "gateway", "building", "ready", "failed"
GATEWAY_SOURCE = "the gateway's own interpreter"


@dataclass(frozen=True)
class EnvironmentStatus:
    """What `online-deployment show` says of a deployment's environment."""

    state: str  # gateway | building | ready | failed
    source: str  # where the requirements came from
    key: str | None = None
    python: str | None = None  # the interpreter's version
    interpreter: str | None = None  # its path (the environment's own python once built)
    note: str | None = None  # e.g. a nearest-newer interpreter stood in for the one asked
    message: str | None = None  # why it failed (uv's own words)
    phase: str | None = None  # the build's current phase while building
    packages: int | None = None
    detail: str = ""
    started_at: float | None = None
    took_s: float | None = None  # how long its build took (when built)
    log: str | None = None  # the build log's path

    def to_dict(self) -> dict[str, Any]:
        return {name: value for name, value in self.__dict__.items() if value is not None}


@dataclass(frozen=True)
class Prepared:
    """Per deployment key: the python to start instances with (absent: the gateway's own),
    the ones that cannot run (key -> message), those left unbuilt (`build=False`), and those
    whose environment another caller is building now (it applies them when done)."""

    pythons: Mapping[str, Path] = field(default_factory=dict)
    failed: Mapping[str, str] = field(default_factory=dict)
    pending: frozenset[str] = frozenset()
    waiting: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _Plan:
    request: EnvironmentRequest
    interpreter: Interpreter
    note: str | None
    key: str


class DeploymentEnvironments:
    """`registered` resolves `azureml:` references; `strict` refuses a nearest-newer Python;
    `conda_files` keeps the inline conda files captured at create (`captured.py`)."""

    def __init__(self, builder: Builder, registered: EnvironmentService | None = None,
                 strict: bool = False, grace_s: float = DEFAULT_GRACE_S,
                 interpreters: Callable[[], Sequence[Interpreter]] = discover,
                 conda_files: Path | None = None) -> None:
        self.builder = builder
        self.conda_files = conda_files or builder.root / "conda-files"
        self.strict = strict
        self.grace_s = grace_s  # gc: how long an unused environment is kept
        self._registered = registered
        self._discover = interpreters
        self._installed: Sequence[Interpreter] | None = None
        self._status: dict[str, EnvironmentStatus] = {}
        self._failed: dict[str, tuple[DeploymentSpec, str]] = {}  # key -> (spec, message)
        self._building: set[str] = set()  # environment keys a thread of ours builds now
        self._lock = threading.Lock()

    # --- what the runtime calls ------------------------------------------------------------

    def prepare(self, deployments: Mapping[str, DeploymentSpec], build: bool = True,
                known: frozenset[str] | None = None) -> Prepared:
        """Builds the missing environments (when `build`) one after the other; blocking.
        The status of a deployment outside `known` (default: `deployments`) is forgotten."""
        pythons: dict[str, Path] = {}
        failed: dict[str, str] = {}
        pending: set[str] = set()
        waiting: set[str] = set()
        for key, spec in deployments.items():
            if spec.is_external:
                continue
            outcome = self._prepare_one(key, spec, build)
            if isinstance(outcome, Path):
                pythons[key] = outcome
            elif outcome is _PENDING:
                pending.add(key)
            elif outcome is _WAITING:
                waiting.add(key)
            elif isinstance(outcome, str):
                failed[key] = outcome
        with self._lock:
            for gone in set(self._status) - (known if known is not None else set(deployments)):
                self._status.pop(gone, None)
                self._failed.pop(gone, None)
        return Prepared(pythons, failed, frozenset(pending), frozenset(waiting))

    def status(self, key: str) -> EnvironmentStatus | None:
        return self._status.get(key)

    def in_use(self) -> set[str]:
        """Environment keys of the deployments known now (built or being built), for gc."""
        return {s.key for s in list(self._status.values()) if s.key}

    def build_log(self, key: str, lines: int = 5000, spec: DeploymentSpec | None = None) -> str:
        """The deployment's last build log (the tail), or '' when it builds nothing.

        The status is kept in memory only; once `serve` restarted, a deployment that is not
        running (a failed create) has none, so its log is found again from `spec`: the log's
        path depends only on the environment's key, which the stored spec determines.
        Blocking (it may read the conda file and the registered environments)."""
        status = self._status.get(key)
        path = status.log if status is not None else None
        if path is None and spec is not None and status is None:
            path = self._derived_log(spec)
        if path is None:
            return ""
        try:
            text = Path(path).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _derived_log(self, spec: DeploymentSpec) -> str | None:
        try:
            plan = None if spec.is_external else self._plan(spec)
        except ScoregateError:  # e.g. its conda file or registered environment is gone
            return None
        return None if plan is None else str(self.builder.log_path(plan.key))

    def build_now(self, request: EnvironmentRequest | None,
                  on_progress: Callable[[Progress], None] | None = None) -> EnvironmentStatus:
        """Builds an environment now, without running anything (`--with-package`, `environment
        build`); raises `BuildFailed` / `NoInterpreter`. None: the gateway's own (no build)."""
        if request is None:
            return EnvironmentStatus(GATEWAY, GATEWAY_SOURCE)
        started = time.monotonic()
        choice = choose(self._interpreters(), request.python, self.strict)
        built = self.builder.build(choice.interpreter, request.requirements, on_progress)
        return EnvironmentStatus(READY, request.source, built.key, choice.interpreter.version_text,
                                 str(built.python), choice.note,
                                 packages=len(built.ready["packages"]),
                                 took_s=(_build_time(built.ready) if built.built_now
                                         else round(time.monotonic() - started, 3)),
                                 log=str(self.builder.log_path(built.key)))

    def capture(self, spec: DeploymentSpec) -> DeploymentSpec:
        """The spec as it is stored: its inline conda file copied (blocking: a file write)."""
        return captured.capture(spec, self.conda_files)

    def conda_request(self, content: str, source: str) -> EnvironmentRequest:
        conda = parse_conda_text(content, source)
        return EnvironmentRequest(conda.python, normalize(conda.requirements, source), source)

    def reference_request(self, reference: str) -> EnvironmentRequest | None:
        """A registered environment's (None: one that exists only in Azure)."""
        return self._registered_request(reference)

    # --- one deployment --------------------------------------------------------------------

    def _prepare_one(self, key: str, spec: DeploymentSpec, build: bool) -> Path | str | object:
        known = self._failed.get(key)
        if known is not None and known[0] == spec:
            return known[1]  # same spec, same failure: not built again
        try:
            plan = self._plan(spec)
        except ScoregateError as error:
            return self._fail(key, spec, EnvironmentStatus(FAILED, _source(spec)), error.message)
        if plan is None:
            self._set(key, EnvironmentStatus(GATEWAY, _source(spec)))
            return None
        base = EnvironmentStatus(BUILDING, plan.request.source, plan.key,
                                 plan.interpreter.version_text, str(plan.interpreter.path),
                                 plan.note, log=str(self.builder.log_path(plan.key)))
        found = self.builder.find(plan.key)
        if found is None:
            with self._lock:
                busy = plan.key in self._building
                if build and not busy:
                    self._building.add(plan.key)
            if busy:  # another write's pass builds it: this one does not wait for it
                current = self._status.get(key)
                if current is None or current.key != plan.key or current.state != BUILDING:
                    self._set(key, replace(base, phase="waiting", detail="built by another "
                                                                          "write"))
                return _WAITING
            if not build:
                self._set(key, replace(base, phase="waiting", detail="to be built"))
                return _PENDING
            self._set(key, replace(base, phase="creating", started_at=time.time()))
            try:
                found = self.builder.build(plan.interpreter, plan.request.requirements,
                                           lambda p: self._progress(key, p))
            except ScoregateError as error:  # BuildFailed, or the server check
                return self._fail(key, spec, self._status.get(key, base), error.message)
            finally:
                with self._lock:
                    self._building.discard(plan.key)
        self._failed.pop(key, None)
        self._set(key, replace(base, state=READY, interpreter=str(found.python), phase=None,
                               packages=len(found.ready.get("packages", [])),
                               took_s=_build_time(found.ready), detail=""))
        return found.python

    def _plan(self, spec: DeploymentSpec) -> _Plan | None:
        request = self.request_for(spec)
        if request is None:
            return None
        choice = choose(self._interpreters(), request.python, self.strict)
        key = self.builder.key_for(choice.interpreter, request.requirements)
        return _Plan(request, choice.interpreter, choice.note, key)

    def request_for(self, spec: DeploymentSpec) -> EnvironmentRequest | None:
        """What the deployment asks for (Azure's precedence); None: the gateway's own."""
        environment = spec.environment
        if isinstance(environment, str):
            return self._registered_request(environment)
        if isinstance(environment, Mapping):
            conda = environment.get("conda_file")
            if isinstance(conda, str) and conda.startswith("azureml:"):
                return self._registered_request(conda)
            if isinstance(conda, str):
                try:
                    return read_conda_file(Path(conda))
                except OSError as error:
                    raise ScoregateError(f"environment.conda_file: cannot read {conda}: "
                                         f"{error.strerror}") from None
            return None  # an image alone: not applied, the gateway's interpreter
        if spec.model_path is not None:
            folder = Path(spec.model_path)
            if (folder / "MLmodel").is_file():
                return read_mlflow_model(folder)
        return None

    def _registered_request(self, reference: str) -> EnvironmentRequest | None:
        if is_cloud_environment(reference):
            return None  # exists only in Azure: the gateway's interpreter, as before
        if self._registered is None:
            raise ScoregateError(f"environment {reference}: registered environments are not "
                                 "available on this server")
        return self._registered.request(self._registered.resolve(reference))

    def _interpreters(self) -> Sequence[Interpreter]:
        with self._lock:  # discovered once per process, when first needed
            if self._installed is None:
                self._installed = tuple(self._discover())
            return self._installed

    def _progress(self, key: str, progress: Progress) -> None:
        current = self._status.get(key)
        if current is not None:
            self._set(key, replace(current, phase=progress.phase,
                                   packages=progress.packages or current.packages,
                                   detail=progress.detail))

    def _fail(self, key: str, spec: DeploymentSpec, status: EnvironmentStatus,
              message: str) -> str:
        self._failed[key] = (spec, message)
        took = (round(time.time() - status.started_at, 3) if status.started_at else None)
        self._set(key, replace(status, state=FAILED, message=message, phase=None, took_s=took))
        return message

    def _set(self, key: str, status: EnvironmentStatus) -> None:
        self._status[key] = status  # one assignment: readers on the event loop see old or new


_PENDING = object()  # not built: build=False
_WAITING = object()  # being built by another caller


def _build_time(ready: Mapping[str, Any]) -> float | None:
    """How long the environment's build took (ready.json), whoever built it."""
    total = (ready.get("timings_s") or {}).get("total")
    return float(total) if isinstance(total, (int, float)) else None


def _source(spec: DeploymentSpec) -> str:
    environment = spec.environment
    if isinstance(environment, str):
        return environment if not is_cloud_environment(environment) else (
            f"{GATEWAY_SOURCE} ({environment} exists only in Azure: not applied)")
    if isinstance(environment, Mapping) and environment.get("conda_file"):
        return str(environment["conda_file"])
    return GATEWAY_SOURCE


__all__ = ["BUILDING", "FAILED", "GATEWAY", "READY", "BuildFailed", "DeploymentEnvironments",
           "EnvironmentStatus", "Prepared"]
