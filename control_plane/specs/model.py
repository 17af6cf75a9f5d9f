"""Azure ML model YAML (`az ml model create -f model.yml`) → the body of the admin API's
`POST /v1/models/{name}/versions`.

Read where the CLI runs, so a relative `path` resolves against the YAML file's folder and the
server gets an absolute one. Shapes are checked here, naming file, key and line; the value
rules (name, version, type) are the registry's, checked by the server. Keys only the cloud
uses (`datastore`, `flavors`, `job_name`, ...) are accepted and not sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from control_plane.errors import ConfigError
from control_plane.specs.fields import (
    Source,
    check_keys,
    describe,
    local_path,
    mapping,
    text,
    text_map,
)
from control_plane.specs.overrides import Override
from control_plane.specs.resources import MODEL_TYPES

MODEL_FILE_KEYS = frozenset({"name", "version", "path", "type", "description", "tags",
                             "properties", "stage"})
MODEL_FILE_CLOUD_KEYS = frozenset({"$schema", "datastore", "flavors", "job_name",
                                   "intellectual_property", "id", "creation_context",
                                   "utc_time_created"})


def load_model_file(path: str | Path, *, overrides: Sequence[Override] = ()) -> dict[str, Any]:
    """The registration the file describes, `--set` ... applied before any check."""
    from control_plane.specs.loader import parse_overridden

    file = str(path)
    try:
        content = Path(path).read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise ConfigError(file, None, f"cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(file, None, f"not UTF-8 text (byte {error.start})") from None
    data, lines = parse_overridden(content, file, overrides)
    return model_from_mapping(data, file, Path(path).absolute().parent, lines)


def model_from_mapping(data: Any, source: str, base_dir: Path,
                       lines: Mapping[str, int] | None = None) -> dict[str, Any]:
    src = Source(source, base_dir, lines or {})
    data = mapping(src, data, "")
    check_keys(src, data, "", MODEL_FILE_KEYS, MODEL_FILE_CLOUD_KEYS, {}, "an Azure ML model")
    body: dict[str, Any] = {}
    for key in ("name", "description", "stage", "type"):
        value = text(src, data, key)
        if value is not None:
            body[key] = value
    if "type" in body and body["type"] not in MODEL_TYPES:
        raise src.error("type", f"expected one of {', '.join(MODEL_TYPES)}, got "
                                f"{body['type']!r}")
    version = data.get("version")
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, (int, str)):
            raise src.error("version", f"expected a whole number, got {describe(version)}")
        body["version"] = str(version)
    raw_path = text(src, data, "path")
    if raw_path is None:
        raise src.error("path", "is required: the model's file or folder")
    body["path"] = local_path(src, raw_path, "path", "any")
    for key in ("tags", "properties"):
        if data.get(key) is not None:
            body[key] = text_map(src, data, key)
    return body
