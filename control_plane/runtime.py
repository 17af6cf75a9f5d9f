"""The running control plane: committed state → instances → published snapshot.

One `Runtime` per `serve`. After each accepted write, `apply_change` reconciles the managed
instances with the committed state and only then publishes it, so the data plane never routes
to a deployment whose instances were not started yet. Readiness changes reported by the
supervisor republish the last applied state with the new set of ready instances.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from control_plane.compile import EndpointKeys, compile_snapshot
from control_plane.events import EventSubscriptions
from control_plane.home import StateDir
from control_plane.instances.managed import InstanceStatus
from control_plane.instances.supervisor import Supervisor
from control_plane.registry import ModelRegistry
from control_plane.rollouts.engine import RolloutEngine
from control_plane.specs.resources import DeploymentSpec, EndpointSpec
from control_plane.store.extension import StoreExtension
from control_plane.store.sqlite_store import Store
from gateway import (
    AUTH_NONE,
    ComparisonReport,
    GatewaySettings,
    ScoringApp,
    SnapshotHolder,
    publish_config,
)


@dataclass(frozen=True)
class AppliedState:
    endpoints: Mapping[str, EndpointSpec] = field(default_factory=dict)
    deployments: Mapping[str, DeploymentSpec] = field(default_factory=dict)
    secrets: Mapping[str, EndpointKeys] = field(default_factory=dict)


class Runtime:
    def __init__(self, state_dir: StateDir, settings: GatewaySettings, admin_token: str,
                 extensions: tuple[StoreExtension, ...] = ()) -> None:
        self.state_dir = state_dir
        self.settings = settings
        self.store = Store(state_dir.path, extensions)
        self.admin_token = admin_token
        self.scoring_url = ""
        self.scoring_on_loopback = False  # set by attach(): whether --local endpoints open
        self._holder: SnapshotHolder | None = None
        self._supervisor: Supervisor | None = None
        self._applied = AppliedState()
        self._version = 0
        self._lock: asyncio.Lock | None = None
        self._rollouts: RolloutEngine | None = None
        self._models: ModelRegistry | None = None
        self._events: EventSubscriptions | None = None
        self.scoring_app: ScoringApp | None = None  # set by attach(); its comparison reports

    def attach(self, *, holder: SnapshotHolder, supervisor: Supervisor, scoring_url: str,
               scoring_app: ScoringApp | None = None, scoring_on_loopback: bool = False) -> None:
        self.scoring_app = scoring_app
        self.scoring_on_loopback = scoring_on_loopback
        self._holder = holder
        self._supervisor = supervisor
        self.scoring_url = scoring_url
        self._lock = asyncio.Lock()

    def attach_rollouts(self, engine: RolloutEngine) -> None:
        """`serve` hands over the engine once the first snapshot is out; until then the admin
        API answers rollout calls with 503."""
        self._rollouts = engine

    @property
    def rollouts(self) -> RolloutEngine | None:
        return self._rollouts
    def attach_models(self, registry: ModelRegistry) -> None:
        """`serve` hands over the registry once `recover()` ran; until then the admin API
        answers model calls with 503."""
        self._models = registry

    @property
    def models(self) -> ModelRegistry | None:
        return self._models

    def attach_events(self, subscriptions: EventSubscriptions) -> None:
        """`serve` hands over the subscriptions once delivery runs; until then the admin API
        answers event-subscription calls with 503."""
        self._events = subscriptions

    @property
    def events(self) -> EventSubscriptions | None:
        return self._events

    @property
    def supervisor(self) -> Supervisor:
        if self._supervisor is None:
            raise RuntimeError("the runtime is not attached to a supervisor yet")
        return self._supervisor

    async def apply_change(self) -> int:
        """Bring instances in line with the store, then publish; returns the snapshot version."""
        assert self._lock is not None, "attach() first"
        async with self._lock:
            state = self._read_committed()
            await self.supervisor.reconcile(state.deployments)
            self._applied = state
            return self.publish()

    def publish(self) -> int:
        """Compile the applied state with the instances ready now, and swap it in."""
        if self._holder is None or self._supervisor is None:
            return 0
        self._version += 1
        snapshot = compile_snapshot(
            self._version,
            self._effective_endpoints(),
            self._applied.deployments,
            self._applied.secrets,
            self._supervisor.ready_instances(),
            self.settings,
        )
        self._holder.publish(snapshot)
        publish_config(snapshot)
        return snapshot.version

    def _effective_endpoints(self) -> dict[str, EndpointSpec]:
        """`--local` endpoints take requests without a key, as Azure's local endpoints do,
        but only while the scoring listener is bound to loopback: `serve --host 0.0.0.0`
        never opens them to the network (their key applies then)."""
        return {name: spec.with_changes(auth_mode=AUTH_NONE)
                if spec.local and self.scoring_on_loopback else spec
                for name, spec in self._applied.endpoints.items()}

    def instance_status(self, key: str) -> list[InstanceStatus]:
        return list(self.supervisor.status(key))

    def logs(self, key: str, lines: int = 5000) -> str:
        return self.supervisor.logs(key, lines)

    def comparisons(self, endpoint: str, deployment: str) -> ComparisonReport:
        """The shadow comparison report of a deployment (the admin API renders it)."""
        if self.scoring_app is None:
            raise RuntimeError("the runtime is not attached to a scoring app yet")
        return self.scoring_app.comparisons(endpoint, deployment)

    def close(self) -> None:
        self.store.close()

    def _read_committed(self) -> AppliedState:
        state = self.store.state()  # one read transaction: never a mix of two commits
        return AppliedState(
            endpoints={name: record.spec for name, record in state.endpoints.items()},
            deployments={key: record.spec for key, record in state.deployments.items()},
            secrets=state.secrets,
        )
