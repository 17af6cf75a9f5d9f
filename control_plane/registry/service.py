"""`ModelRegistry`: create, list, show, update, archive, restore, download, resolve and delete
registered model versions, as `az ml model` does.

Creating is durable in this order: the artifact is copied into `models/tmp/` and fsynced
(`artifacts.stage`, the slow part, outside any transaction), then one store transaction checks
the version, renames the copy into `models/sha256/<digest>` and inserts the row. A crash
before the commit leaves a temporary folder or an artifact folder without a row; `recover`
deletes both at start, so no version is ever half-registered. Renaming and row-writing happen
inside the transaction so that a concurrent delete (which removes an artifact folder only
inside a transaction that sees no row using it) can never remove a folder a new row is about
to use. All of this is blocking file work: callers on an event loop run it in a thread.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from control_plane.errors import Conflict, NotFound, PreconditionFailed, ValidationError
from control_plane.registry import rows
from control_plane.registry.artifacts import ArtifactStore, Staged, tree_digest
from control_plane.registry.asset import (
    DEFAULT_STAGE,
    DEFAULT_TYPE,
    ModelContainer,
    ModelVersion,
    parse_version,
    string_map,
    validate_model_name,
    validate_text,
    validate_type,
)
from control_plane.registry.reference import (
    LABELS,
    LATEST,
    PREFIX,
    ModelReference,
    parse_reference,
)
from control_plane.specs.resources import DeploymentSpec
from control_plane.store import outbox
from control_plane.store.sqlite_store import Record, Store, committed_deployments

MODEL_REGISTERED = outbox.AZURE_ML + "ModelRegistered"
MODEL_ARCHIVED = outbox.SCOREGATE + "model.archived"
MODEL_RESTORED = outbox.SCOREGATE + "model.restored"
ModelRecord = Record[ModelVersion]
Records = list[ModelRecord]
Versions = list[ModelVersion]


@dataclass(frozen=True)
class Recovery:
    """What `recover` found at start."""

    temp_removed: int  # leftovers of interrupted copies and deletes
    orphans_removed: tuple[str, ...]  # digests of artifact folders no row used
    missing: tuple[str, ...]  # ids of versions whose artifact folder is gone (not repairable)


class ModelRegistry:
    def __init__(self, store: Store, home: Path) -> None:
        self._store = store
        self._artifacts = ArtifactStore(Path(home))
        self._root = self._artifacts.root

    def recover(self) -> Recovery:
        """Run at start, before any other call and while no other process writes this state
        folder (`serve` refuses a second one): deletes temporary folders and artifact folders
        that no row uses, and makes stored artifacts read-only again."""
        self._artifacts.ensure()
        temp_removed = self._artifacts.purge_temp()
        used = self._store.feature_read(rows.digests)
        present = self._artifacts.digests()
        orphans = tuple(sorted(present - used))
        for digest in orphans:
            self._artifacts.remove(digest)
        for digest in present & used:
            self._artifacts.seal(digest)
        every = self._store.feature_read(lambda conn: rows.everything(conn, self._root))
        missing = tuple(r.spec.id for r in every if not Path(r.spec.path).exists())
        return Recovery(temp_removed, orphans, missing)

    # Writes ------------------------------------------------------------------------------

    def create(self, name: str, path: Path | str, *, version: int | str | None = None,
               type: str = DEFAULT_TYPE, description: str = "",
               tags: Mapping[str, object] | None = None,
               properties: Mapping[str, object] | None = None,
               stage: str = DEFAULT_STAGE) -> ModelRecord:
        """Registers `path` (a file or folder) as `name` at `version`, or at the next version
        (highest, archived ones included, + 1) when none is given."""
        requested = None if version is None else parse_version(version)
        draft = ModelVersion(
            name=validate_model_name(name), version=0, type=validate_type(type), path="",
            digest="", size=0,
            description=validate_text("description", description),
            tags=string_map("tags", tags), properties=string_map("properties", properties),
            stage=_stage(stage))
        if requested is not None:  # refused before copying what may be gigabytes
            self._store.feature_read(lambda conn: _refuse_existing(
                rows.versions(conn, self._root, draft.name), draft.name, requested))
        staged = self._artifacts.stage(Path(path))
        try:
            return self._store.feature_write(
                lambda conn: self._commit_new(conn, draft, requested, staged))
        except BaseException:
            self._artifacts.discard(staged)  # gone already if it was placed
            raise

    def update(self, name: str, version: int | str, *, description: str | None = None,
               tags: Mapping[str, object] | None = None, stage: str | None = None,
               if_match: str | None = None) -> ModelRecord:
        """Changes what Azure lets change (the artifact never does); None keeps a field,
        `tags` replaces all tags."""
        new_description = None if description is None else validate_text("description",
                                                                          description)
        new_tags = None if tags is None else string_map("tags", tags)
        new_stage = None if stage is None else _stage(stage)
        number = parse_version(version)

        def write(conn: sqlite3.Connection) -> ModelRecord:
            record = _pick(name, self._versions(conn, name), number)
            _check_etag(record, if_match)
            old = record.spec
            return self._save(conn, _touched(
                old, description=old.description if new_description is None else new_description,
                tags=old.tags if new_tags is None else new_tags,
                stage=old.stage if new_stage is None else new_stage))

        return self._store.feature_write(write)

    def archive(self, name: str, version: int | str | None = None,
                if_match: str | None = None) -> Records:
        """Hides a version (or, without `version`, every version of `name`) from `@latest`
        and from `list`; deployments that use it keep working, `azureml:name:version` does
        not resolve for new ones. Returns the versions it applies to."""
        return self._set_archived(name, version, if_match, archived=True)

    def restore(self, name: str, version: int | str | None = None,
                if_match: str | None = None) -> Records:
        return self._set_archived(name, version, if_match, archived=False)

    def delete(self, name: str, version: int | str, if_match: str | None = None) -> None:
        """Refused while a deployment uses the version (archive it instead). The check reads
        the deployments inside the delete's own write transaction, and a deployment's commit
        checks its version exists (`rows.refuse_missing_models`), so neither can slip past the
        other. The artifact folder goes when no other version shares it."""
        number = parse_version(version)
        validate_model_name(name)

        def remove_row(conn: sqlite3.Connection) -> str:
            record = _pick(name, self._versions(conn, name), number)
            _check_etag(record, if_match)
            users = sorted(key for key, spec in committed_deployments(conn).items()
                           if spec.model_ref == record.spec.id)
            if users:
                raise Conflict(
                    f"model {record.spec.id} is used by deployment(s) {', '.join(users)}; "
                    "update or delete them first, or archive the version instead (it then "
                    "leaves @latest but keeps serving them)")
            rows.delete(conn, name, number)
            return record.spec.digest

        digest = self._store.feature_write(remove_row)

        def collect(conn: sqlite3.Connection) -> None:
            if not rows.digest_in_use(conn, digest):
                self._artifacts.remove(digest)

        self._store.feature_write(collect)

    # Deployments -------------------------------------------------------------------------

    def bind(self, spec: DeploymentSpec) -> DeploymentSpec:
        """The deployment with its model resolved to one registered version, as it is created
        or updated: `model_ref` becomes `azureml:name:version`, `model_path` that version's
        stored artifact and `model_type` its type. A reference (no `model_path`) resolves
        now (`@latest` to the highest active version) and never moves afterwards; an inline
        model with a name (`model_path` outside the registry) is registered on the fly, one
        without a name (or `model: ./path`) anonymously (`register_anonymous`); a deployment
        already bound keeps its version (archived or not). A deployment without a model
        (external `urls:`) is left alone."""
        if spec.model_ref is None and spec.model_path is None:
            return spec
        if spec.model_ref is None:
            assert spec.model_path is not None
            model = self.register_anonymous(Path(spec.model_path), spec.model_type)
        elif spec.model_path is None:
            model = self.resolve(spec.model_ref)
        elif self._is_stored(spec.model_path):
            ref = parse_reference(spec.model_ref)
            if ref.version is None:
                raise ValidationError("model-reference", f"model_path {spec.model_path} is a "
                                      f"registered artifact; name its version, not {ref}")
            model = self.show(ref.name, version=ref.version).spec
            if model.path != spec.model_path:
                raise ValidationError("model-reference", f"model_path {spec.model_path} is not "
                                      f"the artifact of {model.id} ({model.path})")
        else:
            model = self._register_inline(spec.model_ref, Path(spec.model_path),
                                          spec.model_type)
        if spec.model_type is not None and spec.model_type != model.type:
            raise ValidationError(
                "model-type", f"the deployment says model type {spec.model_type} but {model.id} "
                f"is registered as {model.type}; leave the type out or register a new version")
        return spec.with_changes(model_ref=model.id, model_path=model.path,
                                 model_type=model.type)

    def register_anonymous(self, path: Path, model_type: str | None) -> ModelVersion:
        """An inline model without a name, registered as Azure ML does: a GUID name and
        version 1, reused whenever the same content is registered again (Azure reuses the
        asset its earlier upload of equal content made). Here the GUID is derived from the
        content digest and type (`anonymous_name`), so re-applying the same folder (`serve
        FOLDER` at each start) finds its version by one hashing pass, without copying, and
        two concurrent applies of equal content meet on one row."""
        wanted_type = validate_type(model_type or DEFAULT_TYPE)
        if not path.exists():
            raise ValidationError("model-path", f"model path {str(path)!r} does not exist")
        known = self._find_anonymous(anonymous_name(tree_digest(path).digest, wanted_type))
        if known is not None:
            return known
        staged = self._artifacts.stage(path)  # the digest of the copy names it, even if
        name = anonymous_name(staged.tree.digest, wanted_type)  # the source changed meanwhile
        draft = ModelVersion(name=name, version=0, type=wanted_type, path="", digest="",
                             size=0, description=ANONYMOUS_DESCRIPTION, tags={},
                             properties={}, stage=DEFAULT_STAGE)

        def write(conn: sqlite3.Connection) -> ModelVersion:
            existing = rows.versions(conn, self._root, name)
            if existing:  # registered meanwhile by an equal apply
                return existing[-1].spec
            return self._commit_new(conn, draft, 1, staged).spec

        try:
            return self._store.feature_write(write)
        finally:
            self._artifacts.discard(staged)  # gone already if it was placed

    def _find_anonymous(self, name: str) -> ModelVersion | None:
        found = self._store.feature_read(lambda conn: rows.versions(conn, self._root, name))
        return found[-1].spec if found else None

    def _is_stored(self, path: str) -> bool:
        return Path(path).is_relative_to(self._artifacts.objects)

    def _register_inline(self, target: str, path: Path, model_type: str | None) -> ModelVersion:
        """`azureml:<name>:<version>` (or `azureml:<name>`) as an inline model's registration:
        an existing version with equal content is reused (so re-applying the same file is
        harmless), different content under an existing version is refused."""
        body = target.removeprefix(PREFIX)
        name, _, version_text = body.partition(":")
        validate_model_name(name)
        requested = parse_version(version_text) if version_text else None
        wanted_type = validate_type(model_type or DEFAULT_TYPE)
        digest = tree_digest(path).digest if path.exists() else ""
        found = self._store.feature_read(lambda conn: rows.versions(conn, self._root, name))
        for record in found:
            model = record.spec
            if requested is not None and model.version != requested:
                continue
            if model.digest == digest and model.type == wanted_type:
                return model
            if requested is not None:
                raise Conflict(
                    f"model {model.id} exists with other content or type (registered from "
                    f"another path, digest {model.digest[:12]}…, type {model.type}); a "
                    f"registered version never changes: leave the inline model's version out "
                    f"to register version {found[0].spec.version + 1}, or reference {model.id}")
        return self.create(name, path, version=requested, type=wanted_type).spec

    # Reads -------------------------------------------------------------------------------

    def list(self, name: str | None = None, *, archived_only: bool = False,
             include_archived: bool = False) -> Records:
        """With `name`: its versions, highest first. Without: each model's highest version,
        by name. Archived versions only with `include_archived`, or alone with
        `archived_only`."""
        if archived_only and include_archived:
            raise ValidationError("model-list", "give archived_only or include_archived, not "
                                  "both")

        def keep(record: ModelRecord) -> bool:
            return include_archived or record.spec.archived == archived_only

        if name is not None:
            return [r for r in self._read_versions(name) if keep(r)]
        every = self._store.feature_read(lambda conn: rows.everything(conn, self._root))
        latest: dict[str, ModelRecord] = {}
        for record in every:
            if keep(record):
                latest.setdefault(record.spec.name, record)
        return list(latest.values())

    def containers(self, *, archived_only: bool = False,
                   include_archived: bool = False) -> Sequence[ModelContainer]:
        """Each model name once, by name, with its `latest_version` (`az ml model list`
        without `--name`). A name whose versions are all archived is an archived container:
        listed only with `include_archived`, or alone with `archived_only`."""
        if archived_only and include_archived:
            raise ValidationError("model-list", "give archived_only or include_archived, not "
                                  "both")
        every = self._store.feature_read(lambda conn: rows.everything(conn, self._root))
        by_name: dict[str, Versions] = {}
        for record in every:  # by name, highest version first
            by_name.setdefault(record.spec.name, []).append(record.spec)
        found = [ModelContainer.of(versions) for versions in by_name.values()]
        return [c for c in found if include_archived or c.archived == archived_only]

    def container(self, name: str) -> ModelContainer:
        """One model name with its `latest_version`; NotFound naming the registered models."""
        return ModelContainer.of([r.spec for r in self._read_versions(name)])

    def show(self, name: str, version: int | str | None = None,
             label: str | None = None) -> ModelRecord:
        """One version, by number (archived ones too) or by label (`latest`: the highest
        version that is not archived)."""
        if (version is None) == (label is None):
            raise ValidationError("model-show", f"show model {name}: give a version or the "
                                  f"label {LATEST}, not both or neither")
        if label is not None and label not in LABELS:
            raise ValidationError("model-label", f"model label {label!r} is unknown; labels: "
                                  f"{', '.join(LABELS)}")
        found = self._read_versions(name)
        return _latest(name, found) if version is None else _pick(name, found,
                                                                  parse_version(version))

    def resolve(self, reference: str | ModelReference) -> ModelVersion:
        """The version a deployment's `model:` names now; missing or archived versions are
        refused, naming the versions that exist."""
        ref = reference if isinstance(reference, ModelReference) else parse_reference(reference)
        found = self._read_versions(ref.name)
        if ref.version is None:
            return _latest(ref.name, found).spec
        model = _pick(ref.name, found, ref.version).spec
        if model.archived:
            raise ValidationError(
                "model-archived", f"model {model.id} is archived; use one of its active "
                f"versions ({_numbers(found, archived=False) or 'none'}) or restore it with "
                f"`scoregate model restore --name {ref.name} --version {ref.version}`")
        return model

    def download(self, name: str, version: int | str, destination: Path | str) -> Path:
        """A writable copy as `destination/<name>/<file or folder>` (the layout of
        `az ml model download`); returns its path."""
        model = self.show(name, version=version).spec
        entry = Path(model.path).name
        return self._artifacts.copy_out(model.digest, entry, Path(destination) / model.name)

    def verify(self, name: str, version: int | str) -> bool:
        """Whether the stored artifact still has the digest and size it was registered with."""
        model = self.show(name, version=version).spec
        found = self._artifacts.verify(model.digest, Path(model.path).name)
        return (found.digest, found.size) == (model.digest, model.size)

    # Internals ---------------------------------------------------------------------------

    def _commit_new(self, conn: sqlite3.Connection, draft: ModelVersion, requested: int | None,
                    staged: Staged) -> ModelRecord:
        existing = rows.versions(conn, self._root, draft.name)
        number = requested or max((r.spec.version for r in existing), default=0) + 1
        _refuse_existing(existing, draft.name, number)
        placed = self._artifacts.place(staged)
        try:
            now = _now()
            saved = self._save(conn, dataclasses.replace(
                draft, version=number, digest=staged.tree.digest, size=staged.tree.size,
                path=str(self._artifacts.location(staged.tree.digest, staged.entry)),
                created_at=now, modified_at=now))
            _emit(conn, MODEL_REGISTERED, saved.spec)
            return saved
        except BaseException:
            if placed and not rows.digest_in_use(conn, staged.tree.digest):
                self._artifacts.remove(staged.tree.digest)
            raise

    def _set_archived(self, name: str, version: int | str | None, if_match: str | None,
                      archived: bool) -> Records:
        number = None if version is None else parse_version(version)
        if number is None and if_match is not None:
            raise ValidationError("model-archive", "if_match applies to one version; give it")

        def write(conn: sqlite3.Connection) -> Records:
            found = self._versions(conn, name)
            targets = found if number is None else [_pick(name, found, number)]
            for record in targets:
                _check_etag(record, if_match)
            changed = [r for r in targets if r.spec.archived != archived]
            saved = {r.spec.version: self._save(conn, _touched(r.spec, archived=archived))
                     for r in changed}
            for record in sorted(saved.values(), key=lambda r: r.spec.version):
                _emit(conn, MODEL_ARCHIVED if archived else MODEL_RESTORED, record.spec)
            return [saved.get(r.spec.version, r) for r in targets]

        return self._store.feature_write(write)

    def _save(self, conn: sqlite3.Connection, model: ModelVersion) -> ModelRecord:
        return Record(model, rows.save(conn, self._root, model))

    def _read_versions(self, name: str) -> Records:
        validate_model_name(name)
        return self._store.feature_read(lambda conn: self._versions(conn, name))

    def _versions(self, conn: sqlite3.Connection, name: str) -> Records:
        """Every version of `name`, highest first; NotFound (naming the models) if none."""
        found = rows.versions(conn, self._root, name)
        if not found:
            raise _unknown(name, rows.names(conn))
        return found


def _emit(conn: sqlite3.Connection, type: str, model: ModelVersion) -> None:
    """In the write's own transaction (the outbox): Event Grid's ModelRegistered data."""
    outbox.emit(conn, type, f"models/{model.name}:{model.version}", {
        "modelName": model.name, "modelVersion": str(model.version),
        "modelTags": dict(model.tags), "modelProperties": dict(model.properties)})


ANONYMOUS_DESCRIPTION = "anonymous: registered from a deployment's inline model without a name"
_ANONYMOUS_NAMESPACE = uuid.UUID("5c0e6a7e-2f4b-4c1a-9d3e-7a1b0c9d8e21")


def anonymous_name(digest: str, model_type: str) -> str:
    """The GUID an anonymous model is registered under: a name-based UUID (RFC 4122 v5) of
    its content digest and type, so equal content of equal type always gets the same name
    (a valid model name: hex digits and dashes)."""
    return str(uuid.uuid5(_ANONYMOUS_NAMESPACE, f"{model_type}:{digest}"))


def _pick(name: str, found: Records, version: int) -> ModelRecord:
    for record in found:
        if record.spec.version == version:
            return record
    raise NotFound(f"model {name} has no version {version}; its versions: {_describe(found)}")


def _latest(name: str, found: Records) -> ModelRecord:
    for record in found:  # highest first
        if not record.spec.archived:
            return record
    raise ValidationError(
        "model-archived", f"model {name} has no version that is not archived (archived: "
        f"{_numbers(found, archived=True)}), so @{LATEST} names none; restore one with "
        f"`scoregate model restore --name {name} --version N`")


def _refuse_existing(found: Records, name: str, version: int) -> None:
    if any(r.spec.version == version for r in found):
        highest = max(r.spec.version for r in found)
        raise Conflict(
            f"model {name} version {version} exists already (versions: {_describe(found)}); a "
            f"registered version never changes: leave the version out to create version "
            f"{highest + 1}, or update the description, tags or stage of version {version}")


def _unknown(name: str, names: Sequence[str]) -> NotFound:
    known = f"registered models: {', '.join(names)}" if names else "no model is registered"
    return NotFound(f"model {name!r} is not registered; {known}")


def _describe(found: Records) -> str:
    text = ", ".join(str(v) for v in sorted(r.spec.version for r in found))
    archived = _numbers(found, archived=True)
    return f"{text} (archived: {archived})" if archived else text


def _numbers(found: Records, archived: bool) -> str:
    return ", ".join(str(v) for v in sorted(r.spec.version for r in found
                                            if r.spec.archived == archived))


def _check_etag(record: ModelRecord, if_match: str | None) -> None:
    """As the store does: quoted values, `W/` and `*` are accepted."""
    if if_match is None:
        return
    wanted = {tag.strip().removeprefix("W/").strip('"') for tag in if_match.split(",")}
    if "*" not in wanted and record.etag not in wanted:
        raise PreconditionFailed(
            f"model {record.spec.id} changed (ETag is now \"{record.etag}\", If-Match gave "
            f"{if_match}); read it again and retry")


def _stage(value: object) -> str:
    text = validate_text("stage", value)
    if not text.strip():
        raise ValidationError("model-stage", "model stage must not be empty (e.g. "
                              f"{DEFAULT_STAGE}, Production)")
    return text


def _touched(model: ModelVersion, **changes: Any) -> ModelVersion:
    return dataclasses.replace(model, modified_at=_now(), **changes)


def _now() -> str:
    return datetime.now(UTC).isoformat()
