"""`scoregate model create|list|show|update|archive|restore|download|delete`, as `az ml model`.

The CLI runs on the server's machine: `create` sends the model's absolute path and the server
copies it (so the path must be readable by the user `serve` runs as); `download` names an
absolute folder the server writes to. `-f model.yml` is read here, relative `path` resolved
against the file's folder, with `--set/--add/--remove` applied before anything is checked;
flags given on the command line win over the file's values. `delete` is scoregate's own
(Azure has none): refused while a deployment uses the version.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from control_plane.cli.client import AdminClient
from control_plane.cli.verbs import Verbs, add_overrides, confirm, overridden
from control_plane.errors import ScoregateError
from control_plane.specs.model import load_model_file
from control_plane.specs.resources import MODEL_TYPES

LABELS = ("latest",)


def _versions(name: str) -> str:
    return f"/v1/models/{name}/versions"


def _version(args: argparse.Namespace, tail: str = "") -> str:
    return f"{_versions(args.name)}/{args.version}{tail}"


def create(client: AdminClient, args: argparse.Namespace) -> Any:
    if args.file is not None:
        body = load_model_file(args.file, overrides=args.overrides)
    else:
        body = overridden({}, args)
    flags = {"name": args.name, "version": args.version, "path": args.path, "type": args.type,
             "description": args.description, "stage": args.stage,
             "tags": _tags(args.tags)}
    body.update({key: value for key, value in flags.items() if value is not None})
    if args.path is not None or (args.file is None and isinstance(body.get("path"), str)):
        body["path"] = os.path.abspath(os.path.expanduser(str(body["path"])))
    name = body.pop("name", None)
    if not isinstance(name, str) or not name:
        raise ScoregateError("give the model's --name (or name: in the --file)")
    if "path" not in body:
        raise ScoregateError("give the model's --path (a file or folder), or path: in the "
                             "--file")
    if "version" in body and body["version"] is not None:
        body["version"] = str(body["version"])
    return client.call("POST", _versions(name), body)


def list_models(client: AdminClient, args: argparse.Namespace) -> Any:
    flags = {"archived_only": "true" if args.archived_only else None,
             "include_archived": "true" if args.include_archived else None}
    if args.archived_only and args.include_archived:
        raise ScoregateError("give --archived-only or --include-archived, not both")
    path = _versions(args.name) if args.name else "/v1/models"
    return client.call("GET", path, **flags)


def show(client: AdminClient, args: argparse.Namespace) -> Any:
    if (args.version is None) == (args.label is None):
        raise ScoregateError("give --version or --label latest (not both)")
    if args.label is not None:
        return client.call("GET", f"/v1/models/{args.name}/labels/{args.label}")
    return client.call("GET", _version(args))


def update(client: AdminClient, args: argparse.Namespace) -> Any:
    """Description, tags and stage (the artifact never changes); `--set tags.k=v`,
    `--remove tags.k` and `--set description=...` work as in az."""
    patch = overridden({}, args, patch=True)
    unknown = sorted(set(patch) - {"description", "tags", "stage"})
    if unknown:
        raise ScoregateError(f"model update changes description, tags and stage only (a "
                             f"registered version's artifact never changes), not "
                             f"{', '.join(unknown)}")
    for key, value in (("description", args.description), ("stage", args.stage)):
        if value is not None:
            patch[key] = value
    tags = _tags(args.tags)
    if tags is not None:
        patch["tags"] = {**(patch.get("tags") or {}), **tags}
    if not patch:
        raise ScoregateError("nothing to update: give --description, --tags, --stage, --set "
                             "or --remove")
    return client.call("PATCH", _version(args), patch)


def archive(client: AdminClient, args: argparse.Namespace) -> Any:
    return _set_archived(client, args, "archive")


def restore(client: AdminClient, args: argparse.Namespace) -> Any:
    return _set_archived(client, args, "restore")


def _set_archived(client: AdminClient, args: argparse.Namespace, action: str) -> Any:
    if args.version is None:  # every version of the model, as az does without --version
        return client.call("POST", f"/v1/models/{args.name}/{action}")
    return client.call("POST", _version(args, f"/{action}"))


def download(client: AdminClient, args: argparse.Namespace) -> Any:
    folder = os.path.abspath(os.path.expanduser(args.download_path or "."))
    return client.call("POST", _version(args, "/download"), {"download_path": folder})


def delete(client: AdminClient, args: argparse.Namespace) -> Any:
    confirm(args, f"model {args.name} version {args.version}")
    return client.call("DELETE", _version(args))


def _tags(values: list[str] | None) -> dict[str, str] | None:
    """`--tags k=v k2=v2`, as az takes them (space-separated KEY=VALUE pairs)."""
    if values is None:
        return None
    tags: dict[str, str] = {}
    for item in values:
        key, equals, value = item.partition("=")
        if not key:
            raise ScoregateError(f"--tags expects KEY=VALUE pairs, got {item!r}")
        tags[key] = value if equals else ""
    return tags


def add_commands(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    verbs = Verbs(parser.add_subparsers(dest="verb", metavar="VERB", required=True), common,
                  "model")
    created = verbs.add("create", create, "register a file or folder as a model version",
                        required=False)
    created.add_argument("-f", "--file", help="model YAML (name, version, path, type, ...)")
    created.add_argument("-v", "--version", help="a whole number (default: highest + 1)")
    created.add_argument("-p", "--path", help="the model's file or folder on this machine "
                         "(copied by the server: it must be readable by the user running "
                         "`scoregate serve`)")
    created.add_argument("-t", "--type", choices=MODEL_TYPES, help="default custom_model")
    _metadata(created)
    add_overrides(created, update=True)
    listed = verbs.add("list", list_models, "model names with their latest version, or the "
                       "versions of --name", required=False)
    listed.add_argument("--archived-only", action="store_true", help="only archived ones")
    listed.add_argument("--include-archived", action="store_true", help="archived ones too")
    shown = verbs.add("show", show, "one version, by --version or --label latest")
    shown.add_argument("-v", "--version")
    shown.add_argument("-l", "--label", choices=LABELS)
    updated = verbs.add("update", update, "change description, tags or stage")
    updated.add_argument("-v", "--version", required=True)
    _metadata(updated)
    add_overrides(updated, update=True)
    for name, run, what in (("archive", archive, "hide from @latest and from lists"),
                            ("restore", restore, "undo archive")):
        sub = verbs.add(name, run, f"{what} (every version without --version)")
        sub.add_argument("-v", "--version")
    downloaded = verbs.add("download", download, "copy a version's files to "
                           "<download-path>/<name>/")
    downloaded.add_argument("-v", "--version", required=True)
    downloaded.add_argument("-p", "--download-path", help="default: the current folder")
    verbs.add_delete(delete, "delete a version no deployment uses (scoregate's own)")
    deleted = verbs.verbs.choices["delete"]
    deleted.add_argument("-v", "--version", required=True)


def _metadata(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", "--description")
    parser.add_argument("--tags", nargs="+", metavar="KEY=VALUE",
                        help="space-separated tags, e.g. --tags team=a stage=test")
    parser.add_argument("-s", "--stage", help="e.g. Development, Production")
