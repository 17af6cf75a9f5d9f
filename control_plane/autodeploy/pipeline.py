"""One run of an auto-deploy policy, stage by stage: create the candidate, gate it, roll it
out, retire the deployment it replaced.

Every stage starts by saving the run's row (with the stage's event, one transaction), and each
stage can be done again: after a restart (even kill -9) `advance` carries the run on from the
stage stored, finding what that stage already did (the candidate exists, the rollout was
started) instead of doing it twice. Live traffic changes only through the rollout engine, whose
rollback puts back exactly the traffic it started from; every other stage touches only the
candidate (0% of live traffic) or, after promotion, the retired deployment (0% by then).
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol, TypeVar

import anyio.to_thread
import httpx
import structlog
from prometheus_client import Counter

from control_plane.autodeploy import gate as gating
from control_plane.autodeploy import rows
from control_plane.errors import NotFound, ScoregateError
from control_plane.specs.autodeploy import (
    CREATING,
    FAILED,
    GATING,
    RETIRING,
    ROLLED_BACK,
    ROLLING_OUT,
    STOPPED,
    SUCCEEDED,
    Policy,
    Run,
)
from control_plane.specs.resources import DeploymentSpec, ScaleSettings
from control_plane.specs.rollout import SUCCEEDED as ROLLOUT_SUCCEEDED
from control_plane.specs.rollout import Rollout, RolloutRequest
from control_plane.store import outbox
from control_plane.store.provisioning import SUCCEEDED as PROVISIONED
from control_plane.store.sqlite_store import Store
from gateway import AUTH_AML_TOKEN, AUTH_NONE, issue_token

T = TypeVar("T")
EVENT_PREFIX = outbox.SCOREGATE + "autodeploy."
RUN_TAG = "scoregate.autodeploy.run"  # on the candidate: which run created it
POLL_S = 0.2
_log = structlog.get_logger("scoregate.autodeploy")
# Served at /metrics, like the rollouts' verdicts: the dashboard draws each stage as an
# annotation. Counted after the stage's transaction committed, never for one that did not.
STAGES = Counter("scoregate_autodeploy_stages", "Auto-deploy stages reached, by event kind.",
                 ("endpoint", "model", "kind"))


class Platform(Protocol):
    """What a run needs from the running server (`Runtime` is one)."""

    @property
    def scoring_url(self) -> str: ...
    @property
    def scoring_on_loopback(self) -> bool: ...
    async def apply_change(self) -> int: ...
    async def provision(self, key: str, wait: bool = True) -> None: ...


class Rollouts(Protocol):
    """The rollout engine, as far as a run uses it."""

    async def start(self, request: RolloutRequest) -> Rollout: ...
    async def show(self, endpoint: str) -> Rollout: ...


class ModelBinder(Protocol):
    """The model registry's `bind`: a deployment's model reference → one stored version."""

    def bind(self, spec: DeploymentSpec) -> DeploymentSpec: ...


def _to_zero(spec: DeploymentSpec) -> DeploymentSpec:
    """Autoscaled from zero: with 0% traffic nothing is in flight, so the scaler drains it at
    its next poll (no scale-in cooldown: it just left traffic); a request sent to it directly
    (the azureml-model-deployment header) starts an instance again, up to its old count."""
    most = max(spec.instance_count, spec.scale_settings.max_instances
               if spec.scale_settings is not None else 1)
    base = spec.scale_settings or ScaleSettings()
    return spec.with_changes(scale_settings=replace(base, min_instances=0, max_instances=most,
                                                    scale_in_cooldown=0))


class RunFailed(ScoregateError):
    """A stage ended the run (`state` says how); live traffic is as it was."""

    def __init__(self, state: str, message: str) -> None:
        super().__init__(message)
        self.state = state


def candidate_name(model: str, version: int) -> str:
    """`<model>-v<version>`, made a valid deployment name (letters, digits, dashes, ≤ 32)."""
    suffix = f"-v{version}"
    base = re.sub(r"-+", "-", re.sub(r"[^A-Za-z0-9-]", "-", model)).strip("-") or "model"
    if not base[0].isalpha():
        base = "m-" + base
    return base[: 32 - len(suffix)].rstrip("-") + suffix


def record(conn: sqlite3.Connection, kind: str, run: Run, **data: Any) -> None:
    """The event of a run's stage, in the transaction that saves the run."""
    outbox.emit(conn, EVENT_PREFIX + kind, f"endpoints/{run.endpoint}/auto-deploy/"
                f"{run.model_id}", {"endpoint": run.endpoint, "modelName": run.model,
                                    "modelVersion": str(run.version), "runId": run.id,
                                    "deployment": run.candidate, "stage": run.stage,
                                    "state": run.state, **data})


class Pipeline:
    def __init__(self, store: Store, platform: Platform, rollouts: Rollouts,
                 models: ModelBinder) -> None:
        self.store = store
        self.platform = platform
        self.rollouts = rollouts
        self.models = models

    async def advance(self, run: Run) -> Run:
        """Carry `run` (running) from its stored stage to its end; the final run."""
        try:
            policy = await self._thread(self.store.feature_read, functools.partial(
                rows.require_policy, endpoint=run.endpoint))
            if run.stage == CREATING:
                run = await self._create(run, policy)
            if run.stage == GATING:
                run = await self._gate(run, policy)
            if run.stage == ROLLING_OUT:
                run = await self._roll_out(run, policy)
            if run.stage == RETIRING:
                run = await self._retire(run, policy)
            return await self._end(run, SUCCEEDED, f"{run.candidate} promoted", "succeeded")
        except RunFailed as failure:
            return await self._failed(run, failure.state, str(failure))
        except asyncio.CancelledError:
            raise
        except ScoregateError as error:  # a refusal of the store, the engine, the registry
            return await self._failed(run, FAILED, str(error))

    # --- stages ----------------------------------------------------------------------------

    async def _create(self, run: Run, policy: Policy) -> Run:
        state = await self._thread(self.store.state)
        key = f"{run.endpoint}/{run.candidate}"
        existing = state.deployments.get(key)
        if existing is not None and existing.spec.tags.get(RUN_TAG) != run.id:
            raise RunFailed(FAILED, f"deployment {run.candidate} of endpoint {run.endpoint} "
                            "already exists and was not created by this run; delete or rename "
                            "it, then register the version again")
        if existing is None:
            source = self._source(run, policy, state.endpoints[run.endpoint].spec.traffic,
                                  {k.split("/", 1)[1]: r.spec for k, r in
                                   state.deployments.items() if k.startswith(run.endpoint + "/")})
            spec = source.with_changes(
                name=run.candidate, model_ref=f"azureml:{run.model}:{run.version}",
                model_path=None, model_type=None, tags={**source.tags, RUN_TAG: run.id})
            run = await self._save(replace(run, source=source.name, updated_at=time.time()),
                                   None)
            bound = await self._thread(self.models.bind, spec)
            await self._thread(self.store.create_deployment, bound)
            await self.platform.apply_change()
        await self.platform.provision(key, True)
        status = (await self._thread(self.store.state)).status(key)
        if status.state != PROVISIONED:
            why = status.reason.splitlines()[0] if status.reason else status.state
            raise RunFailed(FAILED, f"deployment {run.candidate} did not start: {why}")
        following = GATING if policy.gate is not None else ROLLING_OUT
        return await self._save(run.at_stage(following, f"deployment {run.candidate} is ready",
                                             time.time()), "deployment_created",
                                source=run.source)

    def _source(self, run: Run, policy: Policy, traffic: dict[str, int],
                deployments: dict[str, DeploymentSpec]) -> DeploymentSpec:
        name = policy.from_deployment
        if name is None:
            live = sorted((-share, n) for n, share in traffic.items() if share > 0)
            if not live:
                raise RunFailed(FAILED, f"endpoint {run.endpoint} has no deployment with live "
                                "traffic to copy the settings of")
            name = live[0][1]
        if name not in deployments:
            raise RunFailed(FAILED, f"--from-deployment {name} is not a deployment of "
                            f"endpoint {run.endpoint} (its deployments: "
                            f"{', '.join(sorted(deployments)) or 'none'})")
        return deployments[name]

    async def _gate(self, run: Run, policy: Policy) -> Run:
        assert policy.gate is not None and policy.gate_data is not None
        url, headers = await self._scoring(run.endpoint)
        metric = policy.gate.metric
        capacity = await self._thread(self._capacity, run.endpoint, run.candidate)
        async with httpx.AsyncClient(timeout=gating.TIMEOUT_S) as client:
            candidate = await gating.score(client, url, headers, run.candidate,
                                           policy.gate_data, metric, capacity)
            live = None
            if policy.gate.relative:
                live = await gating.score(client, url, headers, run.source or "",
                                          policy.gate_data, metric, capacity)
        verdict = gating.verdict(policy.gate, candidate, live, len(policy.gate_data.rows))
        run = replace(run, gate=verdict)
        if not verdict.passed:
            await self._save(run, None)
            raise RunFailed(STOPPED, f"stopped at the gate: {verdict.message}")
        return await self._save(run.at_stage(ROLLING_OUT, f"gate passed: {verdict.message}",
                                             time.time()), "gate_passed",
                                metric=metric, measured=verdict.candidate, live=verdict.live,
                                bound=verdict.bound)

    def _capacity(self, endpoint: str, name: str) -> int:
        spec = self.store.deployment(endpoint, name).spec
        return spec.request_settings.max_concurrent_requests_per_instance * spec.instance_count

    async def _roll_out(self, run: Run, policy: Policy) -> Run:
        rollout = await self._own_rollout(run)
        if rollout is None:
            request = replace(policy.rollout, endpoint=run.endpoint, target=run.candidate)
            rollout = await self.rollouts.start(request)
            run = await self._save(replace(run, rollout_id=rollout.id, updated_at=time.time()),
                                   "rollout_started", rolloutId=rollout.id,
                                   strategy=rollout.strategy)
        while rollout.active:
            await asyncio.sleep(POLL_S)
            rollout = await self.rollouts.show(run.endpoint)
            if rollout.id != run.rollout_id:
                raise RunFailed(FAILED, f"rollout {run.rollout_id} was replaced by "
                                f"{rollout.id}")
        if rollout.state != ROLLOUT_SUCCEEDED:
            raise RunFailed(ROLLED_BACK, f"rollout {rollout.id} {rollout.state}: "
                            f"{rollout.reason}")
        return await self._save(run.at_stage(RETIRING, f"rollout {rollout.id} promoted "
                                             f"{run.candidate}", time.time()), "promoted",
                                rolloutId=rollout.id)

    async def _own_rollout(self, run: Run) -> Rollout | None:
        """The rollout this run started (it may have started it before a crash)."""
        try:
            latest = await self.rollouts.show(run.endpoint)
        except NotFound:
            return None
        started = next((r.at for r in reversed(run.history) if r.stage == ROLLING_OUT),
                       run.created_at)
        if latest.id == run.rollout_id or (run.rollout_id is None and latest.target ==
                                           run.candidate and latest.created_at >= started - 1):
            return latest
        return None

    async def _retire(self, run: Run, policy: Policy) -> Run:
        """The deployments the promoted one replaced (0% now): kept, scaled down or deleted."""
        state = await self._thread(self.store.state)
        if policy.old_deployment == "keep" or run.endpoint not in state.endpoints:
            return run
        spec = state.endpoints[run.endpoint].spec
        rollout = await self.rollouts.show(run.endpoint)
        if rollout.id != run.rollout_id:  # a later rollout: its start is not this run's
            return run
        old = [name for name, share in rollout.start_traffic.items()
               if share > 0 and name != run.candidate and not spec.traffic.get(name)
               and not spec.mirror_traffic.get(name)
               and f"{run.endpoint}/{name}" in state.deployments]
        done = {"delete": "deleted", "scale-to-zero": "scaled to zero"}.get(
            policy.old_deployment, "scaled down to 1 instance")
        notes = [f"{', '.join(old) or 'nothing'} {done}"]
        for name in old:
            try:  # the candidate is live already: a refusal here is said, not a failed run
                await self._retire_one(run.endpoint, name, policy.old_deployment)
            except ScoregateError as error:
                notes.append(f"{name} left as it is: {error}")
        return await self._save(run.at_stage(RETIRING, "; ".join(notes), time.time()),
                                "retired", retired=old, action=policy.old_deployment)

    async def _retire_one(self, endpoint: str, name: str, action: str) -> None:
        if action == "delete":
            await self._thread(self.store.begin_delete, endpoint, name)
        elif action == "scale-to-zero":
            await self._thread(self.store.patch_deployment, endpoint, name, _to_zero)
        elif (await self._thread(self.store.deployment, endpoint, name)).spec.instance_count == 1:
            return  # already the least there is
        else:
            await self._thread(self.store.patch_deployment, endpoint, name,
                               lambda spec: spec.with_changes(instance_count=1))
        await self.platform.apply_change()
        await self.platform.provision(f"{endpoint}/{name}", True)

    # --- endings ---------------------------------------------------------------------------

    async def abandon(self, run: Run, reason: str) -> Run:
        """End a run a bug interrupted, as a failure (live traffic is as the rollout left it)."""
        return await self._failed(run, FAILED, reason)

    async def _failed(self, run: Run, state: str, reason: str) -> Run:
        """Live traffic is as it was (only a rollout changes it, and it rolled back); the
        candidate stays at 0% for inspection or goes, as the policy says."""
        current = await self._thread(self.store.feature_read,
                                     functools.partial(rows.run, run_id=run.id))
        run = current or run
        policy = await self._thread(self.store.feature_read,
                                    functools.partial(rows.policy, endpoint=run.endpoint))
        kind = {STOPPED: "gate_failed", ROLLED_BACK: "rolled_back"}.get(state, "failed")
        if policy is not None and policy.on_gate_failure == "delete" and run.candidate:
            reason += await self._delete_candidate(run)
        gate = run.gate
        extra = {} if gate is None else {"metric": gate.metric, "measured": gate.candidate,
                                         "live": gate.live, "bound": gate.bound}
        return await self._end(run, state, reason, kind, **extra)

    async def _delete_candidate(self, run: Run) -> str:
        key = f"{run.endpoint}/{run.candidate}"
        try:
            record = await self._thread(self.store.deployment, run.endpoint, run.candidate)
            if record.spec.tags.get(RUN_TAG) != run.id:
                return ""
            await self._thread(self.store.begin_delete, run.endpoint, run.candidate)
            await self.platform.apply_change()
            await self.platform.provision(key, True)
            return f"; deployment {run.candidate} deleted"
        except ScoregateError as error:
            return f"; deployment {run.candidate} could not be deleted: {error}"

    async def _end(self, run: Run, state: str, reason: str, kind: str, **data: Any) -> Run:
        ended = run.ended(state, reason, time.time())
        return await self._save(ended, kind, reason=reason, **data)

    # --- shared steps ----------------------------------------------------------------------

    async def _save(self, run: Run, kind: str | None, **data: Any) -> Run:
        def write(conn: sqlite3.Connection) -> None:
            rows.save_run(conn, run)
            if kind is not None:
                record(conn, kind, run, **data)

        await self._thread(self.store.feature_write, write)
        if kind is not None:
            STAGES.labels(run.endpoint, run.model, kind).inc()
            _log.info("auto-deploy", kind=kind, endpoint=run.endpoint, model=run.model_id,
                      deployment=run.candidate, stage=run.stage, state=run.state,
                      reason=run.reason)
        return run

    async def _scoring(self, endpoint: str) -> tuple[str, dict[str, str]]:
        """The endpoint's scoring URL and the credential a client would send."""
        spec = (await self._thread(self.store.endpoint, endpoint)).spec
        url = f"{self.platform.scoring_url}/endpoints/{endpoint}/score"
        if spec.auth_mode == AUTH_NONE or (spec.local and self.platform.scoring_on_loopback):
            return url, {}
        secrets = await self._thread(self.store.secrets, endpoint)
        if spec.auth_mode == AUTH_AML_TOKEN:
            token, _ = issue_token(endpoint, secrets.token_secret, 600.0)
            return url, {"authorization": f"Bearer {token}"}
        return url, {"authorization": f"Bearer {secrets.primary_key}"}

    async def _thread(self, call: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(functools.partial(call, *args))
