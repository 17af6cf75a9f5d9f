"""The durable state: endpoints, deployments, traffic, mirror settings and keys, in SQLite.

Every write runs in one `BEGIN IMMEDIATE` transaction that reads the current state, applies
the change to a working copy (`_Draft`), validates the whole result with `validation` and
writes the rows that changed. Concurrent writers in other threads or processes therefore
queue instead of losing each other's changes, and a stale `if_match` is refused.

ETags: each row keeps the revision of the commit that last changed it, so an ETag never
repeats (not even after delete and re-create) and `int(etag)` tells which snapshot version
first carries that change. `revision` bumps with every commit that changes something.

An endpoint's `traffic` lists every one of its deployments (0 for those without live
traffic), as Azure's `show` does; `mirror_traffic` is `{}` when mirroring is off.
"""

from __future__ import annotations

import json
import secrets as random_secrets
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from control_plane.errors import (
    Conflict,
    NotFound,
    PreconditionFailed,
    ScoregateError,
    ValidationError,
)
from control_plane.specs import validation
from control_plane.specs.diff import describe_changes
from control_plane.specs.resources import DeploymentSpec, EndpointSpec
from control_plane.store import change_events, outbox, provisioning
from control_plane.store.database import Database
from control_plane.store.extension import DeploymentGuard, StoreExtension, WriteGuard
from control_plane.store.provisioning import (
    CREATE,
    CREATING,
    DELETING,
    FAILED,
    SUCCEEDED,
    UPDATE,
    UPDATING,
    Provisioning,
)

T = TypeVar("T")
Percents = Mapping[str, int]
KEY_TYPES = ("primary", "secondary")


@dataclass(frozen=True)
class Record(Generic[T]):
    spec: T
    etag: str  # the revision that last changed this resource, as text (unquoted)


@dataclass(frozen=True)
class EndpointSecrets:
    primary_key: str = field(repr=False)
    secondary_key: str = field(repr=False)
    token_secret: bytes = field(repr=False)

    @classmethod
    def generate(cls) -> EndpointSecrets:
        return cls(
            random_secrets.token_urlsafe(32),
            random_secrets.token_urlsafe(32),
            random_secrets.token_urlsafe(32).encode(),
        )


@dataclass(frozen=True)
class StoreState:
    """Everything committed at one revision, read in one transaction (what `compile` needs)."""

    revision: int
    endpoints: Mapping[str, Record[EndpointSpec]]
    deployments: Mapping[str, Record[DeploymentSpec]]  # keyed "endpoint/name"
    secrets: Mapping[str, EndpointSecrets]
    provisioning: Mapping[str, Provisioning] = field(default_factory=dict)  # only rows stored

    def status(self, key: str) -> Provisioning:
        """The provisioning state of deployment `key` ("endpoint/name")."""
        return self.provisioning.get(key, Provisioning())


def deployment_key(endpoint: str, name: str) -> str:
    return f"{endpoint}/{name}"


class Store:
    """`extensions`: the features' tables and write guards (see `extension.py`)."""

    def __init__(self, home: Path, extensions: tuple[StoreExtension, ...] = ()) -> None:
        self._db = Database(Path(home), extensions)
        self._guards = _Guards(
            tuple(guard for ext in extensions for guard in ext.guards),
            tuple(guard for ext in extensions for guard in ext.deployment_guards))

    def close(self) -> None:
        self._db.close()

    # Reads -------------------------------------------------------------------------------

    def state(self) -> StoreState:
        with self._db.read() as conn:
            return _read_state(conn)

    @property
    def revision(self) -> int:
        with self._db.read() as conn:
            return _revision(conn)

    def endpoints(self) -> dict[str, Record[EndpointSpec]]:
        return dict(self.state().endpoints)

    def endpoint(self, name: str) -> Record[EndpointSpec]:
        return _Draft(self.state()).endpoint_record(name)

    def deployments(self, endpoint: str | None = None) -> dict[str, Record[DeploymentSpec]]:
        state = self.state()
        if endpoint is not None and endpoint not in state.endpoints:
            raise _endpoint_not_found(endpoint)
        return {
            key: record
            for key, record in state.deployments.items()
            if endpoint is None or record.spec.endpoint_name == endpoint
        }

    def deployment(self, endpoint: str, name: str) -> Record[DeploymentSpec]:
        return _Draft(self.state()).deployment_record(endpoint, name)

    def secrets(self, endpoint: str) -> EndpointSecrets:
        state = self.state()
        if endpoint not in state.secrets:
            raise _endpoint_not_found(endpoint)
        return state.secrets[endpoint]

    # Writes ------------------------------------------------------------------------------

    def create_endpoint(self, spec: EndpointSpec) -> Record[EndpointSpec]:
        def change(draft: _Draft) -> None:
            if spec.name in draft.endpoints:
                raise Conflict(f"endpoint {spec.name} exists; update it instead")
            draft.endpoints[spec.name] = spec
            draft.secrets[spec.name] = EndpointSecrets.generate()

        return self._write(change)[1].endpoints[spec.name]

    def update_endpoint(
        self, spec: EndpointSpec, if_match: str | None = None
    ) -> Record[EndpointSpec]:
        """Replaces the whole spec; deployments left out of `traffic` get 0."""
        return self.patch_endpoint(spec.name, lambda _: spec, if_match)

    def patch_endpoint(
        self, name: str, revise: Callable[[EndpointSpec], EndpointSpec],
        if_match: str | None = None,
    ) -> Record[EndpointSpec]:
        """Applies `revise` to the spec as committed, inside the write transaction, so
        concurrent patches queue and none is lost (no read-then-write race, no retries)."""

        def change(draft: _Draft) -> None:
            revised = revise(draft.endpoint(name, if_match))
            if revised.name != name:
                raise ValidationError("name", f"an update cannot rename endpoint {name}")
            draft.endpoints[name] = revised

        return self._write(change)[1].endpoints[name]

    def delete_endpoint(self, name: str, if_match: str | None = None) -> int:
        """Deletes the endpoint with its deployments and keys; returns the commit's revision."""

        def change(draft: _Draft) -> None:
            draft.endpoint(name, if_match)
            del draft.endpoints[name]
            del draft.secrets[name]
            for key in draft.deployment_keys(name):
                del draft.deployments[key]

        return self._write(change)[1].revision

    def create_deployment(
        self, spec: DeploymentSpec, all_traffic: bool = False
    ) -> Record[DeploymentSpec]:
        """Stored `Creating` with 0% of live traffic; `all_traffic` (100% to it, 0 to the others)
        waits for `finish_provisioning` to report it ready. An external deployment (its URLs
        are its instances) has nothing to start: it is `Succeeded` at once."""
        key = deployment_key(spec.endpoint_name, spec.name)

        def change(draft: _Draft) -> None:
            endpoint = draft.endpoint(spec.endpoint_name)
            if key in draft.deployments:
                raise Conflict(
                    f"deployment {spec.name} of endpoint {spec.endpoint_name} exists; "
                    "update it instead"
                )
            draft.deployments[key] = spec
            draft.provisioning[key] = _created(spec, all_traffic)
            if all_traffic and spec.is_external:
                draft.endpoints[endpoint.name] = endpoint.with_changes(traffic={spec.name: 100})

        return self._write(change)[1].deployments[key]

    def update_deployment(
        self, spec: DeploymentSpec, if_match: str | None = None
    ) -> Record[DeploymentSpec]:
        """Replaces the whole spec."""
        return self.patch_deployment(spec.endpoint_name, spec.name, lambda _: spec, if_match)

    def patch_deployment(
        self, endpoint: str, name: str, revise: Callable[[DeploymentSpec], DeploymentSpec],
        if_match: str | None = None,
    ) -> Record[DeploymentSpec]:
        """Like `patch_endpoint`, for one deployment."""
        key = deployment_key(endpoint, name)

        def change(draft: _Draft) -> None:
            current = draft.deployment(endpoint, name, if_match)
            revised = revise(current)
            if deployment_key(revised.endpoint_name, revised.name) != key:
                raise ValidationError("name", f"an update cannot rename deployment {name} "
                                              f"or move it out of endpoint {endpoint}")
            status = draft.status(key)
            if revised != current and status.in_progress:
                raise Conflict(f"deployment {name} of endpoint {endpoint} is {status.state}; "
                               "wait until that ends (online-deployment show tells)")
            if revised != current:
                draft.provisioning[key] = _begun(status, current, revised)
            draft.deployments[key] = revised

        return self._write(change)[1].deployments[key]

    def delete_deployment(self, endpoint: str, name: str, if_match: str | None = None) -> int:
        """Refused while it has live or mirror traffic; returns the commit's revision."""

        def change(draft: _Draft) -> None:
            draft.deployment(endpoint, name, if_match)
            _drop_deployment(draft, endpoint, name)

        return self._write(change)[1].revision

    def begin_delete(self, endpoint: str, name: str,
                     if_match: str | None = None) -> Record[DeploymentSpec]:
        """Marks it `Deleting` (refused while it has live or mirror traffic): its instances
        stop, then `finish_provisioning` removes the row. A crash in between leaves it
        `Deleting`, and the next start finishes the job."""
        key = deployment_key(endpoint, name)

        def change(draft: _Draft) -> None:
            draft.deployment(endpoint, name, if_match)
            validation.check_can_delete_deployment(draft.endpoint(endpoint), name)
            draft.provisioning[key] = Provisioning(DELETING, operation=provisioning.DELETE)

        return self._write(change)[1].deployments[key]

    def finish_provisioning(self, endpoint: str, name: str, etag: str, state: str,
                            failure: str | None) -> Provisioning | None:
        """Ends the operation that started at `etag`: `Succeeded` (and the pending
        `--all-traffic` applied), or `Failed` with `failure` (a failed update puts the previous
        spec back, so what served keeps serving; a failed create keeps its spec, runs
        nothing and gets no traffic). Nothing happens when the deployment changed or went
        meanwhile (`etag` and `state` say which operation this is); returns the state now
        stored (None when the deployment is gone)."""
        begun = (etag, state)
        try:
            return self._finish(endpoint, name, begun, failure, with_traffic=True)
        except ScoregateError as refused:  # e.g. a rollout's guard: the deployment still works
            if failure is not None:
                raise
            note = f"ready, but --all-traffic was not applied: {refused}"
            return self._finish(endpoint, name, begun, None, with_traffic=False, note=note)

    def _finish(self, endpoint: str, name: str, begun: tuple[str, str], failure: str | None, *,
                with_traffic: bool, note: str = "") -> Provisioning | None:
        key = deployment_key(endpoint, name)

        def change(draft: _Draft) -> None:
            record = draft.before.deployments.get(key)
            status = draft.status(key)
            if record is None or (record.etag, status.state) != begun or not status.in_progress:
                return
            if status.state == DELETING:
                _drop_deployment(draft, endpoint, name)
            elif failure is None:
                draft.provisioning[key] = Provisioning(SUCCEEDED, note, status.operation)
                if status.all_traffic and with_traffic:
                    spec = draft.endpoint(endpoint)
                    draft.endpoints[endpoint] = spec.with_changes(traffic={name: 100})
            else:
                draft.provisioning[key] = Provisioning(FAILED, failure, status.operation)
                if status.operation == UPDATE and status.previous is not None:
                    draft.deployments[key] = status.previous

        after = self._write(change)[1]
        return after.status(key) if key in after.deployments else None

    def set_traffic(
        self, endpoint: str, traffic: Mapping[str, int], if_match: str | None = None
    ) -> Record[EndpointSpec]:
        """Replaces the live traffic map; deployments it leaves out get 0."""
        return self._set_endpoint_map(endpoint, "traffic", traffic, if_match)

    def set_mirror(
        self, endpoint: str, mirror: Mapping[str, int], if_match: str | None = None
    ) -> Record[EndpointSpec]:
        """Replaces the mirror map; `{green: 0}` or `{}` turns mirroring off."""
        return self._set_endpoint_map(endpoint, "mirror_traffic", mirror, if_match)

    def regenerate_key(self, endpoint: str, key_type: str) -> EndpointSecrets:
        if key_type not in KEY_TYPES:
            raise ValidationError(
                "key-type", f"key type must be primary or secondary, got {key_type!r}"
            )

        def change(draft: _Draft) -> None:
            draft.endpoint(endpoint)
            old = draft.secrets[endpoint]
            fresh = random_secrets.token_urlsafe(32)
            draft.secrets[endpoint] = EndpointSecrets(
                fresh if key_type == "primary" else old.primary_key,
                fresh if key_type == "secondary" else old.secondary_key,
                old.token_secret,
            )

        return self._write(change)[1].secrets[endpoint]

    def apply(
        self, endpoints: Sequence[EndpointSpec], deployments: Sequence[DeploymentSpec]
    ) -> list[str]:
        """Creates or updates what the YAML names and leaves the rest, in one transaction.

        An endpoint file without `traffic` (or `mirror_traffic`) keeps the stored one.
        """
        _refuse_twice("endpoint", [spec.name for spec in endpoints])
        _refuse_twice("deployment", [deployment_key(s.endpoint_name, s.name) for s in deployments])

        def change(draft: _Draft) -> None:
            for spec in endpoints:
                current = draft.endpoints.get(spec.name)
                if current is None:
                    draft.secrets[spec.name] = EndpointSecrets.generate()
                else:
                    spec = spec.with_changes(
                        traffic=spec.traffic or current.traffic,
                        mirror_traffic=spec.mirror_traffic or current.mirror_traffic,
                    )
                draft.endpoints[spec.name] = spec
            draft.declarative = True  # the YAML's traffic holds even for deployments starting
            for deployment in deployments:
                if deployment.endpoint_name not in draft.endpoints:
                    raise NotFound(
                        f"deployment {deployment.name} names endpoint "
                        f"{deployment.endpoint_name}, which neither exists nor is applied"
                    )
                key = deployment_key(deployment.endpoint_name, deployment.name)
                stored = draft.deployments.get(key)
                if stored is None:
                    draft.provisioning[key] = _created(deployment, all_traffic=False)
                elif stored != deployment:
                    draft.provisioning[key] = _begun(draft.status(key), stored, deployment)
                draft.deployments[key] = deployment

        before, after = self._write(change)
        named = [spec.name for spec in endpoints]
        lines = [
            _change_line("endpoint", name, before.endpoints, after.endpoints) for name in named
        ]
        lines += [
            _change_line("endpoint", name, before.endpoints, after.endpoints)
            for name in after.endpoints
            if name not in named and after.endpoints[name] != before.endpoints.get(name)
        ]
        lines += [
            _change_line(
                "deployment",
                deployment_key(s.endpoint_name, s.name),
                before.deployments,
                after.deployments,
            )
            for s in deployments
        ]
        return lines

    # Features' own tables (store/extension.py) -------------------------------------------

    def feature_traffic_write(
        self, writer: str, endpoint: str,
        save: Callable[[sqlite3.Connection, EndpointSpec], tuple[Percents | None, Percents | None]],
    ) -> int:
        """One transaction for a feature's row and the traffic it sets (a rollout transition):
        `save` sees the endpoint as committed, writes its rows (or refuses by raising) and
        returns the traffic and mirror to set (None: unchanged). Returns the revision: a crash
        never splits a feature's state from its traffic. `writer` is passed to the guards."""
        with self._db.write() as conn:
            draft = _Draft(_read_state(conn))
            draft.writer = writer
            spec = draft.endpoint(endpoint)
            traffic, mirror = save(conn, spec)
            changes = {"traffic": traffic, "mirror_traffic": mirror}
            draft.endpoints[endpoint] = spec.with_changes(
                **{name: dict(value) for name, value in changes.items() if value is not None})
            return _commit(conn, draft, self._guards).revision

    def feature_write(self, write: Callable[[sqlite3.Connection], T]) -> T:
        """One `BEGIN IMMEDIATE` transaction over a feature's own tables."""
        with self._db.write() as conn:
            return write(conn)

    def feature_read(self, read: Callable[[sqlite3.Connection], T]) -> T:
        with self._db.read() as conn:
            return read(conn)

    # The outbox (outbox.py) ----------------------------------------------------------------

    def events(self, since: float | None = None, types: Sequence[str] = (),
               limit: int = 1000) -> list[outbox.Event]:
        """The event log, oldest first (`scoregate event list`)."""
        with self._db.read() as conn:
            return outbox.listing(conn, since, types, limit)

    def on_commit(self, listener: Callable[[], None]) -> None:
        """See `Database.on_commit`: how a reader of the outbox is woken."""
        self._db.on_commit(listener)

    # Internals ---------------------------------------------------------------------------

    def _set_endpoint_map(
        self, endpoint: str, field_name: str, value: Mapping[str, int], if_match: str | None
    ) -> Record[EndpointSpec]:
        def change(draft: _Draft) -> None:
            spec = draft.endpoint(endpoint, if_match)
            draft.endpoints[endpoint] = spec.with_changes(**{field_name: value})

        return self._write(change)[1].endpoints[endpoint]

    def _write(self, change: Callable[[_Draft], None]) -> tuple[StoreState, StoreState]:
        """Runs `change` on the state read inside one write transaction; returns (before, after)."""
        with self._db.write() as conn:
            before = _read_state(conn)
            draft = _Draft(before)
            change(draft)
            return before, _commit(conn, draft, self._guards)


class _Draft:
    """A working copy of the state inside one write transaction (never outlives it)."""

    def __init__(self, before: StoreState) -> None:
        self.before = before
        self.endpoints = {name: record.spec for name, record in before.endpoints.items()}
        self.deployments = {key: record.spec for key, record in before.deployments.items()}
        self.secrets = dict(before.secrets)
        self.provisioning = dict(before.provisioning)
        self.writer: str | None = None  # a feature writing its own traffic (guards may pass it)
        self.declarative = False  # `apply`: traffic as the YAML says, provisioned or not

    def status(self, key: str) -> Provisioning:
        return self.provisioning.get(key, Provisioning())

    def endpoint(self, name: str, if_match: str | None = None) -> EndpointSpec:
        if name not in self.endpoints:
            raise _endpoint_not_found(name)
        if name in self.before.endpoints:
            _check_etag(f"endpoint {name}", self.before.endpoints[name].etag, if_match)
        return self.endpoints[name]

    def deployment(self, endpoint: str, name: str, if_match: str | None = None) -> DeploymentSpec:
        key = deployment_key(endpoint, name)
        self.endpoint(endpoint)
        if key not in self.deployments:
            raise NotFound(f"deployment {name} not found in endpoint {endpoint}")
        if key in self.before.deployments:
            _check_etag(f"deployment {name}", self.before.deployments[key].etag, if_match)
        return self.deployments[key]

    def endpoint_record(self, name: str) -> Record[EndpointSpec]:
        self.endpoint(name)
        return self.before.endpoints[name]

    def deployment_record(self, endpoint: str, name: str) -> Record[DeploymentSpec]:
        self.deployment(endpoint, name)
        return self.before.deployments[deployment_key(endpoint, name)]

    def deployment_keys(self, endpoint: str) -> list[str]:
        return sorted(
            key for key, spec in self.deployments.items() if spec.endpoint_name == endpoint
        )

    def deployment_names(self, endpoint: str) -> list[str]:
        return [self.deployments[key].name for key in self.deployment_keys(endpoint)]


@dataclass(frozen=True)
class _Guards:
    endpoints: tuple[WriteGuard, ...] = ()
    deployments: tuple[DeploymentGuard, ...] = ()


def committed_deployments(conn: sqlite3.Connection) -> dict[str, DeploymentSpec]:
    """The deployments as committed, keyed `endpoint/name`, read on a feature's connection
    inside its own transaction (the registry checks in-use versions so, without a race)."""
    return {key: record.spec for key, record in _read_state(conn).deployments.items()}


def _commit(conn: sqlite3.Connection, draft: _Draft, guards: _Guards) -> StoreState:
    """Validates the draft against Azure's rules, writes what changed, bumps the revision."""
    before = draft.before
    for name, spec in list(draft.endpoints.items()):
        names = draft.deployment_names(name)
        normalized = _normalized(spec, names)
        old = before.endpoints.get(name)
        if old is None or old.spec != normalized or spec != normalized:
            validation.validate_endpoint(spec, names)
            validation.check_deployment_count(len(names))
        draft.endpoints[name] = normalized
    for key, deployment in draft.deployments.items():
        old_deployment = before.deployments.get(key)
        if old_deployment is None or old_deployment.spec != deployment:
            validation.validate_deployment(deployment)
    if not draft.declarative:
        _check_traffic_targets(draft)
    revision = before.revision + 1
    after = StoreState(
        revision,
        _records(before.endpoints, draft.endpoints, revision),
        _records(before.deployments, draft.deployments, revision),
        dict(draft.secrets),
        {key: status for key, status in draft.provisioning.items() if key in draft.deployments},
    )
    if (
        after.endpoints == before.endpoints
        and after.deployments == before.deployments
        and after.secrets == before.secrets
        and after.provisioning == before.provisioning
    ):
        return before
    if guards.endpoints:
        old_specs = {name: record.spec for name, record in before.endpoints.items()}
        new_specs = {name: record.spec for name, record in after.endpoints.items()}
        for guard in guards.endpoints:
            guard(conn, old_specs, new_specs, draft.writer)
    changed = {key: record.spec for key, record in after.deployments.items()
               if before.deployments.get(key) != record}
    if changed:
        for deployment_guard in guards.deployments:
            deployment_guard(conn, changed)
    for event in change_events.changes(_specs(before), _specs(after), draft.writer):
        outbox.emit(conn, event.type, event.subject, event.data)
    _write_rows(conn, before, after)
    return after


def _specs(state: StoreState) -> change_events.Specs:
    failures = {key: (status.operation, status.reason)
                for key, status in state.provisioning.items() if status.state == FAILED}
    return change_events.Specs({name: r.spec for name, r in state.endpoints.items()},
                               {key: r.spec for key, r in state.deployments.items()}, failures)


def _created(spec: DeploymentSpec, all_traffic: bool) -> Provisioning:
    """External deployments (their URLs are their instances) have nothing to start."""
    if spec.is_external:
        return Provisioning(SUCCEEDED)
    return Provisioning(CREATING, all_traffic=all_traffic)


def _begun(status: Provisioning, current: DeploymentSpec,
           revised: DeploymentSpec) -> Provisioning:
    """The operation that changing `current` into `revised` starts. Where a working version
    serves (its create succeeded), it is an update that keeps that version to fall back to."""
    if revised.is_external:  # its URLs are its instances: nothing to start or wait for
        return Provisioning(SUCCEEDED, operation=UPDATE if status.runs else CREATE)
    if status.state == CREATING or not status.runs:
        return Provisioning(CREATING, all_traffic=status.all_traffic)
    previous = status.previous if status.state == UPDATING else current
    return Provisioning(UPDATING, operation=UPDATE, previous=previous)


def _drop_deployment(draft: _Draft, endpoint: str, name: str) -> None:
    spec = draft.endpoint(endpoint)
    validation.check_can_delete_deployment(spec, name)
    del draft.deployments[deployment_key(endpoint, name)]
    draft.provisioning.pop(deployment_key(endpoint, name), None)
    traffic = {n: p for n, p in spec.traffic.items() if n != name}
    mirror = {n: p for n, p in spec.mirror_traffic.items() if n != name}
    draft.endpoints[endpoint] = spec.with_changes(traffic=traffic, mirror_traffic=mirror)


def _check_traffic_targets(draft: _Draft) -> None:
    """Live traffic may rise only for deployments that serve: never for one still `Creating`,
    whose create failed, or being deleted (its share of requests would get 503). Mirror copies
    never reach a client: they are refused only where no instance will ever run."""
    for name, spec in draft.endpoints.items():
        old = draft.before.endpoints.get(name)
        for field_name in ("traffic", "mirror_traffic"):
            before = getattr(old.spec, field_name) if old is not None else {}
            for deployment, percent in getattr(spec, field_name).items():
                status = draft.status(deployment_key(name, deployment))
                allowed = status.can_take_traffic if field_name == "traffic" else status.runs
                if percent > before.get(deployment, 0) and not allowed:
                    why = f" ({status.reason.splitlines()[0]})" if status.reason else ""
                    raise ValidationError(
                        "traffic-not-provisioned",
                        f"deployment {deployment} of endpoint {name} is {status.state}{why}; "
                        "it can take traffic once it is Succeeded (online-deployment show)")


def _normalized(spec: EndpointSpec, deployment_names: list[str]) -> EndpointSpec:
    traffic = {name: spec.traffic.get(name, 0) for name in deployment_names}
    mirror = {name: percent for name, percent in spec.mirror_traffic.items() if percent != 0}
    return spec.with_changes(traffic=traffic, mirror_traffic=mirror)


def _records(
    before: Mapping[str, Record[T]], specs: Mapping[str, T], revision: int
) -> dict[str, Record[T]]:
    result: dict[str, Record[T]] = {}
    for key, spec in sorted(specs.items()):
        old = before.get(key)
        result[key] = old if old is not None and old.spec == spec else Record(spec, str(revision))
    return result


def _write_rows(conn: sqlite3.Connection, before: StoreState, after: StoreState) -> None:
    for name in before.endpoints.keys() - after.endpoints.keys():
        conn.execute("DELETE FROM endpoints WHERE name = ?", (name,))
    for key in before.deployments.keys() - after.deployments.keys():
        endpoint, name = key.split("/", 1)
        conn.execute("DELETE FROM deployments WHERE endpoint = ? AND name = ?", (endpoint, name))
    for name in before.secrets.keys() - after.secrets.keys():
        conn.execute("DELETE FROM secrets WHERE endpoint = ?", (name,))
    for name, record in after.endpoints.items():
        if before.endpoints.get(name) != record:
            conn.execute(
                "INSERT OR REPLACE INTO endpoints (name, spec, version) VALUES (?, ?, ?)",
                (name, json.dumps(record.spec.to_dict()), int(record.etag)),
            )
    for key, deployment in after.deployments.items():
        if before.deployments.get(key) != deployment:
            spec = deployment.spec
            conn.execute(
                "INSERT OR REPLACE INTO deployments (endpoint, name, spec, version)"
                " VALUES (?, ?, ?, ?)",
                (spec.endpoint_name, spec.name, json.dumps(spec.to_dict()), int(deployment.etag)),
            )
    for name, keys in after.secrets.items():
        if before.secrets.get(name) != keys:
            conn.execute(
                "INSERT OR REPLACE INTO secrets VALUES (?, ?, ?, ?)",
                (name, keys.primary_key, keys.secondary_key, keys.token_secret),
            )
    provisioning.write_changes(conn, before.provisioning, after.provisioning)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'revision'", (after.revision,))


def _read_state(conn: sqlite3.Connection) -> StoreState:
    endpoints = {
        name: Record(EndpointSpec.from_dict(json.loads(spec)), str(version))
        for name, spec, version in conn.execute(
            "SELECT name, spec, version FROM endpoints ORDER BY name"
        )
    }
    deployments = {
        deployment_key(endpoint, name): Record(
            DeploymentSpec.from_dict(json.loads(spec)), str(version)
        )
        for endpoint, name, spec, version in conn.execute(
            "SELECT endpoint, name, spec, version FROM deployments ORDER BY endpoint, name"
        )
    }
    secrets = {
        endpoint: EndpointSecrets(primary, secondary, bytes(token))
        for endpoint, primary, secondary, token in conn.execute("SELECT * FROM secrets")
    }
    return StoreState(_revision(conn), endpoints, deployments, secrets,
                      provisioning.read_all(conn))


def _revision(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
    return int(row[0])


def _check_etag(what: str, etag: str, if_match: str | None) -> None:
    if if_match is None:
        return
    wanted = if_match.strip().removeprefix("W/").strip('"')
    if wanted not in ("*", etag):
        raise PreconditionFailed(
            f'{what} has changed since version "{wanted}" was read (it is now "{etag}"); '
            "read it again and retry"
        )


def _endpoint_not_found(name: str) -> NotFound:
    return NotFound(f"endpoint {name} not found")


def _refuse_twice(kind: str, names: list[str]) -> None:
    seen = {name for name in names if names.count(name) > 1}
    if seen:
        raise Conflict(f"{kind} {', '.join(sorted(seen))} is declared more than once")


def _change_line(
    kind: str, key: str, before: Mapping[str, Record[Any]], after: Mapping[str, Record[Any]]
) -> str:
    name = key.split("/", 1)[-1]
    old, new = before.get(key), after[key]
    if old is None:
        return f"created {kind} {name}"
    if old == new:
        return f"unchanged {kind} {name}"
    changes = describe_changes(old.spec.to_dict(), new.spec.to_dict())
    return f"updated {kind} {name} ({changes})"
