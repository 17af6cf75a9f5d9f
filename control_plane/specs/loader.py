"""Load Azure ML endpoint and deployment YAML files into the control plane's specs.

A file's kind is told by its `$schema` when it has one, else by its keys (`endpoint_name`,
`model`, `code_configuration`, `url(s)`, `instance_count` ⇒ deployment). The YAML is
composed first so that every key keeps its line for error messages; the rules themselves
live in `yaml_schema`. Every failure is a `ConfigError` naming the file (and key and line).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from control_plane.errors import ConfigError, ScoregateError
from control_plane.specs.fields import MAX_DEPTH, dotted
from control_plane.specs.overrides import Override
from control_plane.specs.overrides import apply as apply_overrides
from control_plane.specs.resources import DeploymentSpec, EndpointSpec
from control_plane.specs.schema import deployment_from_mapping, endpoint_from_mapping

Kind = Literal["endpoint", "deployment"]
Spec = EndpointSpec | DeploymentSpec

YAML_SUFFIXES = (".yml", ".yaml")
QUIET_KEYS = ("$schema",)  # kept in not_applied, but not a setting worth a line
MAX_KEYS = 100_000  # counted with aliases expanded; real files have dozens
DEPLOYMENT_MARKERS = ("endpoint_name", "model", "code_configuration", "url", "urls",
                      "instance_count")
MINIMAL_ENDPOINT = frozenset({"$schema", "name", "description", "tags"})  # auth_mode defaults
ENDPOINT_MARKERS = ("auth_mode", "traffic", "mirror_traffic", "compute", "identity",
                    "public_network_access")


def load_file(path: str | Path, *, kind: Kind | None = None, name: str | None = None,
              endpoint_name: str | None = None, overrides: Sequence[Override] = ()) -> Spec:
    """One endpoint or deployment file; `name`/`endpoint_name` override the file's, as in `az`.

    `kind` is for callers that know it (`online-endpoint create -f`); else the file tells it.
    `overrides` (`--set` ...) change the file's mapping before anything is validated.
    """
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(file, None, f"cannot read: {error.strerror or error}") from None
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConfigError(file, None, f"not UTF-8 text (byte {error.start})") from None
    base_dir = Path(path).absolute().parent
    return load_text(content, file, base_dir, kind=kind, name=name, endpoint_name=endpoint_name,
                     overrides=overrides)


def load_folder(path: str | Path) -> tuple[list[EndpointSpec], list[DeploymentSpec]]:
    """Every *.yml / *.yaml directly in the folder, in name order; other files are ignored."""
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(str(path), None, "is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in YAML_SUFFIXES
                   and p.is_file())
    if not files:
        raise ConfigError(str(path), None, "holds no endpoint or deployment YAML (*.yml, *.yaml)")
    endpoints: list[EndpointSpec] = []
    deployments: list[DeploymentSpec] = []
    seen: dict[str, str] = {}
    for file in files:
        spec = load_file(file)
        key = spec.name if isinstance(spec, EndpointSpec) else f"{spec.endpoint_name}/{spec.name}"
        label = f"{_kind_of(spec)} {key}"
        if label in seen:
            raise ConfigError(str(file), "name", f"{label} is also defined in {seen[label]}")
        seen[label] = str(file)
        if isinstance(spec, EndpointSpec):
            endpoints.append(spec)
        else:
            deployments.append(spec)
    return endpoints, deployments


def load_text(content: str, source: str, base_dir: Path, *, kind: Kind | None = None,
              name: str | None = None, endpoint_name: str | None = None,
              overrides: Sequence[Override] = ()) -> Spec:
    """YAML (or JSON, which is YAML) text, e.g. an admin API body; `source` names it in errors."""
    data, lines = parse_overridden(content, source, overrides)
    kind = kind or kind_of(data, source)
    if kind == "endpoint":
        return endpoint_from_mapping(data, source, base_dir, name=name, lines=lines)
    return deployment_from_mapping(data, source, base_dir, name=name,
                                   endpoint_name=endpoint_name, lines=lines)


def load_endpoint_text(content: str, source: str, base_dir: Path, *,
                       name: str | None = None) -> EndpointSpec:
    data, lines = parse_yaml(content, source)
    return endpoint_from_mapping(data, source, base_dir, name=name, lines=lines)


def load_deployment_text(content: str, source: str, base_dir: Path, *, name: str | None = None,
                         endpoint_name: str | None = None) -> DeploymentSpec:
    data, lines = parse_yaml(content, source)
    return deployment_from_mapping(data, source, base_dir, name=name,
                                   endpoint_name=endpoint_name, lines=lines)


def kind_of(data: Any, source: str) -> Kind:
    if not isinstance(data, dict):
        raise ConfigError(source, None, "expected a mapping of keys (an Azure ML online endpoint "
                                        "or deployment)")
    schema = data.get("$schema")
    if isinstance(schema, str):
        if "OnlineDeployment" in schema:
            return "deployment"
        if "OnlineEndpoint" in schema:
            return "endpoint"
        raise ConfigError(source, "$schema", f"{schema!r} is not an online endpoint or online "
                                             "deployment schema")
    if any(key in data for key in DEPLOYMENT_MARKERS):
        return "deployment"
    if any(key in data for key in ENDPOINT_MARKERS) or set(data) <= MINIMAL_ENDPOINT:
        return "endpoint"
    raise ConfigError(source, None, "neither an online endpoint nor an online deployment: an "
                                    "endpoint has auth_mode, a deployment has endpoint_name")


def parse_overridden(content: str, source: str,
                     overrides: Sequence[Override]) -> tuple[Any, dict[str, int]]:
    """`parse_yaml`, then the overrides applied to the raw mapping (before any rule is
    checked); overridden keys lose their line, since the command line set them."""
    data, lines = parse_yaml(content, source)
    if not overrides:
        return data, lines
    try:
        changed = apply_overrides(data, overrides)
    except ScoregateError as error:
        raise ConfigError(source, None, error.message) from None
    for override in overrides:
        key = ".".join(override.path)
        lines = {k: v for k, v in lines.items() if k != key and not k.startswith(key + ".")
                 and not k.startswith(key + "[")}
    return changed, lines


def parse_yaml(content: str, source: str) -> tuple[Any, dict[str, int]]:
    """The data and the 1-based line of every dotted key (`request_settings.request_timeout_ms`)."""
    try:
        loader = yaml.SafeLoader(content)
    except yaml.reader.ReaderError as error:  # a control character, found before any parsing
        line = content.count("\n", 0, error.position) + 1
        raise ConfigError(source, None, f"not valid YAML: character {error.character!r} is not "
                                        "allowed", line) from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError(source, None, "is empty; expected an online endpoint or deployment")
        lines: dict[str, int] = {}
        _index(node, "", lines, source, set())
        return loader.construct_document(node), lines
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = " ".join(filter(None, (error.context, error.problem))) or str(error)
        raise ConfigError(source, None, f"not valid YAML: {problem}",
                          None if mark is None else mark.line + 1) from None
    except yaml.YAMLError as error:
        raise ConfigError(source, None, f"not valid YAML: {error}") from None
    except (ValueError, TypeError, OverflowError) as error:  # e.g. a date like 2024-13-45
        raise ConfigError(source, None, f"not valid YAML: {error}") from None
    except RecursionError:
        raise ConfigError(source, None, "not valid YAML: nested too deeply") from None
    finally:
        loader.dispose()


def _index(node: yaml.Node, prefix: str, lines: dict[str, int], source: str,
           active: set[int]) -> None:
    """Record key lines, refuse duplicate keys (PyYAML would keep the last one silently)."""
    if len(lines) > MAX_KEYS:
        raise ConfigError(source, None, f"has more than {MAX_KEYS} keys (an alias bomb?)")
    if id(node) in active or len(active) > MAX_DEPTH:
        raise ConfigError(source, prefix or None, "is nested too deeply (a recursive anchor?)",
                          node.start_mark.line + 1)
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        names: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                continue
            path = dotted(prefix, str(key_node.value))
            if key_node.value in names:
                raise ConfigError(source, path, "appears twice", key_node.start_mark.line + 1)
            names.add(key_node.value)
            lines.setdefault(path, key_node.start_mark.line + 1)
            _index(value_node, path, lines, source, active)
    elif isinstance(node, yaml.SequenceNode):
        for position, item in enumerate(node.value):
            path = f"{prefix}[{position}]"
            lines.setdefault(path, item.start_mark.line + 1)
            _index(item, path, lines, source, active)
    active.discard(id(node))


def _kind_of(spec: Spec) -> Kind:
    return "endpoint" if isinstance(spec, EndpointSpec) else "deployment"


def describe_not_applied(spec: Spec) -> list[str]:
    """The line `serve` prints for a spec with cloud-only settings (none when all apply)."""
    shown = {key: value for key, value in spec.not_applied.items() if key not in QUIET_KEYS}
    if not shown:
        return []
    if isinstance(spec, EndpointSpec):
        label = f"endpoint {spec.name}"
    else:
        label = f"deployment {spec.endpoint_name}/{spec.name}"
    items = ", ".join(f"{key}={_short(value)}" for key, value in shown.items())
    return [f"{label}: not applied here: {items}"]


def _short(value: Any) -> str:
    shown = value if isinstance(value, str) else yaml.safe_dump(
        value, default_flow_style=True, sort_keys=False, width=10_000).strip()
    if shown.endswith("\n...") or shown.endswith(" ..."):
        shown = shown[:-4].strip()
    return shown if len(shown) <= 80 else shown[:77] + "..."
