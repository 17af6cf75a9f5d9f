"""Azure ML endpoint and deployment mappings → `EndpointSpec` / `DeploymentSpec`.

The keys follow the CLI v2 schemas (managedOnlineEndpoint, managedOnlineDeployment, and the
kubernetes variants that the azureml-examples files use). Keys that only mean something in
the cloud are accepted and kept in `not_applied` (dotted, as written), so files from Azure
load unchanged; a key neither schema knows is an error naming it. The admin API calls the
`*_from_mapping` functions with JSON bodies, so both paths share every rule and message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from control_plane.errors import ValidationError
from control_plane.specs import validation
from control_plane.specs.fields import (
    Source,
    check_keys,
    describe,
    integer,
    local_path,
    mapping,
    percent_map,
    plain,
    required_text,
    text,
    text_map,
)
from control_plane.specs.resources import (
    AUTH_MODES,
    MLFLOW_MODEL,
    MODEL_TYPES,
    SCALE_DEFAULT,
    SCALE_TYPES,
    BatchingSettings,
    DeploymentSpec,
    EndpointSpec,
    ProbeSettings,
    RequestSettings,
    RollingUpdate,
    ScaleSettings,
)

ENDPOINT_KEYS = frozenset({"name", "auth_mode", "traffic", "mirror_traffic", "description", "tags"})
ENDPOINT_CLOUD_KEYS = frozenset({
    "$schema", "identity", "public_network_access", "compute", "kind", "type", "properties",
    "id", "location", "provisioning_state", "scoring_uri", "openapi_uri",
})
DEPLOYMENT_KEYS = frozenset({
    "name", "endpoint_name", "model", "code_configuration", "environment",
    "environment_variables", "instance_count", "request_settings", "liveness_probe",
    "readiness_probe", "description", "tags", "url", "urls", "batching", "scale_settings",
    "rolling_update",
})
ROLLING_KEYS = frozenset({"max_surge", "max_unavailable", "bake_s", "max_error_rate",
                          "max_latency_factor", "min_requests"})
DEPLOYMENT_CLOUD_KEYS = frozenset({
    "$schema", "instance_type", "app_insights_enabled", "egress_public_network_access",
    "data_collector", "type", "private_network_connection", "with_package",
    "model_mount_path", "resources", "startup_probe", "properties", "id", "provisioning_state",
})
MODEL_KEYS = frozenset({"path", "name", "version", "type", "description"})
REFERENCE_PREFIX = "azureml:"
# `name:version` / `name@label` without the prefix (a path of that shape that exists wins)
REFERENCE_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}(:[0-9]+|@[A-Za-z]+)")
MODEL_CLOUD_KEYS = frozenset({"$schema", "tags", "properties", "stage", "datastore", "flavors",
                              "job_name", "intellectual_property"})
ENVIRONMENT_KEYS = frozenset({
    "$schema", "name", "version", "description", "tags", "properties", "image", "conda_file",
    "build", "inference_config", "os_type", "datastore", "intellectual_property", "stage",
})
MLMODEL = "MLmodel"  # the file that makes a folder an MLflow model
REQUEST_KEYS = frozenset({"request_timeout_ms", "max_concurrent_requests_per_instance"})
AUTH_NOT_YET = frozenset({"aad_token"})
ENDPOINT = "an Azure ML online endpoint"
DEPLOYMENT = "an Azure ML online deployment"


def endpoint_from_mapping(data: Any, source: str, base_dir: Path, *, name: str | None = None,
                          lines: Mapping[str, int] | None = None) -> EndpointSpec:
    """`name` (the CLI's --name) overrides the name in the data, as with `az ml`."""
    src = Source(source, base_dir, lines or {})
    data = mapping(src, data, "")
    not_applied: dict[str, Any] = {}
    check_keys(src, data, "", ENDPOINT_KEYS, ENDPOINT_CLOUD_KEYS, not_applied, ENDPOINT)
    traffic = percent_map(src, data, "traffic")
    mirror = percent_map(src, data, "mirror_traffic")
    _check_percents(src, traffic, mirror)
    return EndpointSpec(
        name=_name(src, data, "name", "endpoint", name),
        auth_mode=_auth_mode(src, data),
        traffic=traffic,
        mirror_traffic=mirror,
        description=text(src, data, "description", default="") or "",
        tags=text_map(src, data, "tags"),
        not_applied=not_applied,
    )


def deployment_from_mapping(data: Any, source: str, base_dir: Path, *, name: str | None = None,
                            endpoint_name: str | None = None,
                            lines: Mapping[str, int] | None = None) -> DeploymentSpec:
    """`name` / `endpoint_name` (the CLI's flags) override those in the data, as with `az ml`."""
    src = Source(source, base_dir, lines or {})
    data = mapping(src, data, "")
    not_applied: dict[str, Any] = {}
    check_keys(src, data, "", DEPLOYMENT_KEYS, DEPLOYMENT_CLOUD_KEYS, not_applied, DEPLOYMENT)
    name = _name(src, data, "name", "deployment", name)
    endpoint_name = _name(src, data, "endpoint_name", "endpoint", endpoint_name)
    urls = _urls(src, data)
    model_path, model_ref, model_type = _model(src, data, not_applied)
    code_dir, script = _code(src, data, urls, not_applied, model_type, model_ref, model_path)
    if model_path is not None and model_type == MLFLOW_MODEL and code_dir is None and not urls:
        _check_mlflow_folder(src, data, model_path)
    if urls and "instance_count" in data:
        not_applied["instance_count"] = plain(src, data["instance_count"], "instance_count")
    request_settings = _request_settings(src, data, not_applied)
    scale = _scale_settings(src, data, bool(urls))
    instance_count = _instance_count(src, data, scale)
    return DeploymentSpec(
        name=name,
        endpoint_name=endpoint_name,
        model_path=model_path,
        code_dir=code_dir,
        scoring_script=script,
        environment_variables=text_map(src, data, "environment_variables"),
        instance_count=instance_count,
        request_settings=request_settings,
        liveness_probe=_probe(src, data, "liveness_probe"),
        readiness_probe=_probe(src, data, "readiness_probe"),
        urls=urls,
        description=text(src, data, "description", default="") or "",
        tags=text_map(src, data, "tags"),
        environment=_environment(src, data, not_applied),
        not_applied=not_applied,
        model_ref=model_ref,
        model_type=model_type,
        batching=_batching(src, data, request_settings, bool(urls)),
        scale_settings=scale,
        rolling_update=_rolling_update(src, data),
    )


def _name(src: Source, data: Mapping[str, Any], key: str, kind: str, override: str | None) -> str:
    if override is not None:
        value = override
    else:
        value = required_text(src, data, key)
    try:
        validation.validate_name(kind, value)
    except ValidationError as error:
        raise src.invalid(key, error) from None
    return value


def _auth_mode(src: Source, data: Mapping[str, Any]) -> str:
    value = text(src, data, "auth_mode", default="key") or "key"
    mode = value.lower()  # the Azure CLI accepts `Key` (the kubernetes example writes it so)
    if mode in AUTH_NOT_YET:
        raise src.error("auth_mode", f"auth_mode {value!r} is not supported yet; use key or "
                                     "aml_token")
    if mode not in AUTH_MODES:
        raise src.error("auth_mode", f"expected one of {', '.join(AUTH_MODES)}, got "
                                     f"{value!r}")
    return mode


def _check_percents(src: Source, traffic: dict[str, int], mirror: dict[str, int]) -> None:
    """The rules one file can break alone; unknown deployments are the store's to check."""
    names = set(traffic) | set(mirror)
    try:
        validation.validate_traffic(traffic, names, mirror)
    except ValidationError as error:
        raise src.invalid("traffic", error) from None
    try:
        validation.validate_mirror(mirror, names, traffic)
    except ValidationError as error:
        raise src.invalid("mirror_traffic", error) from None


def _urls(src: Source, data: Mapping[str, Any]) -> tuple[str, ...]:
    if "url" in data and "urls" in data:
        raise src.error("urls", "give url or urls, not both")
    if data.get("url") is not None:
        return (_url(src, data["url"], "url"),)
    raw = data.get("urls")
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        raise src.error("urls", f"expected a list of http(s) URLs, got {describe(raw)}")
    urls = tuple(_url(src, item, f"urls[{index}]") for index, item in enumerate(raw))
    if len(set(urls)) != len(urls):
        raise src.error("urls", "names the same URL twice")
    return urls


def _url(src: Source, value: Any, key: str) -> str:
    """An external scoring server; its path is the scoring path (default /score)."""
    if not isinstance(value, str):
        raise src.error(key, f"expected an http(s) URL, got {describe(value)}")
    value = value.strip()
    try:
        validation.validate_url(value)  # before urlsplit, which drops tabs and newlines silently
    except ValidationError as error:
        raise src.invalid(key, error) from None
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as error:
        raise src.error(key, f"{value!r} is not a valid URL: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise src.error(key, f"expected an http:// or https:// URL with a host, got {value!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise src.error(key, f"{value!r}: query strings, fragments and credentials are not "
                             "supported in scoring URLs")
    netloc = parts.hostname if port is None else f"{parts.hostname}:{port}"
    if ":" in parts.hostname:
        netloc = f"[{parts.hostname}]" + ("" if port is None else f":{port}")
    return f"{parts.scheme}://{netloc}{parts.path or '/score'}"


def _model(src: Source, data: Mapping[str, Any],
           not_applied: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(model_path, model_ref, model_type) as the file gives them; the registry resolves a
    reference, or registers an inline model (anonymously without a name) or a path, when the
    deployment is created.

    `model: azureml:<name>:<version>` (or `@latest`, with or without `azureml:`) is a
    reference; any other text is a local path; a mapping is an inline model (`path`, and
    optionally the `name`/`version` it is registered as and its `type`)."""
    value = data.get("model")
    if value is None:
        return None, None, None
    if isinstance(value, str):
        if value.startswith(REFERENCE_PREFIX) or (
                REFERENCE_SHAPE.fullmatch(value) and not (src.base_dir / value).exists()):
            return None, value, None
        return local_path(src, value, "model", "any"), None, None
    model = mapping(src, value, "model")
    check_keys(src, model, "model", MODEL_KEYS, MODEL_CLOUD_KEYS, not_applied, "a model")
    if "description" in model:  # shown, not applied: the registered version has its own
        not_applied["model.description"] = plain(src, model["description"], "model.description")
    model_type = _model_type(src, model)
    path = text(src, model, "path", "model")
    if path is None:
        raise src.error("model", "model.path is required in an inline model (a registered "
                                 "one is named as model: azureml:<name>:<version>)")
    return local_path(src, path, "model.path", "any"), _inline_name(src, model), model_type


def _inline_name(src: Source, model: Mapping[str, Any]) -> str | None:
    """`azureml:<name>:<version>` (or `azureml:<name>`: the next version) that an inline
    model is registered as; None when it has no name (the registry registers it anonymously)."""
    name = text(src, model, "name", "model")
    version = model.get("version")
    if isinstance(version, bool) or not isinstance(version, (int, str, type(None))):
        raise src.error("model.version", f"expected a whole number, got {describe(version)}")
    if name is None:
        if version is not None:
            raise src.error("model.version", "an inline model with a version needs a name")
        return None
    if ":" in name or "@" in name:
        raise src.error("model.name", f"{name!r}: a model name has no ':' or '@'")
    return f"{REFERENCE_PREFIX}{name}" + ("" if version is None else f":{version}")


def _model_type(src: Source, model: Mapping[str, Any]) -> str | None:
    """Azure's asset types, in any case (`MLflow_model`); None when the file does not say."""
    value = text(src, model, "type", "model")
    if value is None:
        return None
    if value.lower() not in MODEL_TYPES:
        raise src.error("model.type", f"expected one of {', '.join(MODEL_TYPES)}, got "
                                      f"{value!r}")
    return value.lower()


def _check_mlflow_folder(src: Source, data: Mapping[str, Any], model_path: str) -> None:
    """A no-code deployment is served from the model's MLmodel: say so at load, not as an
    instance that fails to start."""
    if not os.path.isfile(os.path.join(model_path, MLMODEL)):
        key = "model.path" if isinstance(data.get("model"), dict) else "model"
        raise src.error(key, f"{model_path} holds no {MLMODEL} file: a model of type "
                             f"{MLFLOW_MODEL} deployed without code_configuration must be an "
                             f"MLflow model folder (the one holding {MLMODEL})")


def _code(src: Source, data: Mapping[str, Any], urls: tuple[str, ...],
          not_applied: dict[str, Any], model_type: str | None, model_ref: str | None,
          model_path: str | None) -> tuple[str | None, str | None]:
    """The scoring script; none is needed for external servers or an MLflow model (no-code).
    A registered model's type is known once it resolves: the store checks it then."""
    value = data.get("code_configuration")
    if value is None:
        if urls or model_type == MLFLOW_MODEL:
            return None, None
        if model_type is None and model_ref is not None and model_path is None:
            return None, None
        if model_type not in (None, "custom_model"):
            raise src.error("model.type", f"deployments of a {model_type} without a scoring "
                                          "script are not supported yet; add "
                                          "code_configuration")
        raise src.error(None, "code_configuration {code, scoring_script} is required (or "
                              "url/urls of an external scoring server, or a model of type "
                              f"{MLFLOW_MODEL})")
    if urls:
        raise src.error("code_configuration", "give code_configuration or url/urls, not both")
    code = mapping(src, value, "code_configuration")
    check_keys(src, code, "code_configuration", ("code", "scoring_script"), (), not_applied,
               "code_configuration")
    folder = local_path(src, required_text(src, code, "code", "code_configuration"),
                        "code_configuration.code", "folder")
    script = required_text(src, code, "scoring_script", "code_configuration")
    inside = os.path.normpath(script)
    if os.path.isabs(inside) or inside == ".." or inside.startswith(".." + os.sep):
        raise src.error("code_configuration.scoring_script", f"{script!r} must be a path "
                        "inside the code folder (as Azure ML uploads only that folder)")
    local_path(Source(src.file, Path(folder), src.lines), script,
               "code_configuration.scoring_script", "file")
    return folder, script


def _environment(src: Source, data: Mapping[str, Any], not_applied: dict[str, Any]) -> Any:
    """Kept as given (conda_file made absolute). Applied: `conda_file`, and references to
    registered environments (`azureml:name:version`, `azureml:name@latest`); the rest (`image`,
    Azure's curated environments and registries) is cloud-only here."""
    value = data.get("environment")
    if value is None:
        return None
    if isinstance(value, str):
        if not value.startswith("azureml:") or is_cloud_environment(value):
            not_applied["environment"] = value
        return value
    env = mapping(src, value, "environment")
    check_keys(src, env, "environment", ("conda_file",), ENVIRONMENT_KEYS - {"conda_file"},
               not_applied, "an environment")
    kept = plain(src, env, "environment")
    conda = text(src, env, "conda_file", "environment")
    if conda is not None and not conda.startswith("azureml:"):
        kept["conda_file"] = os.path.abspath(os.path.join(src.base_dir, conda))
    return kept


def is_cloud_environment(reference: str) -> bool:
    """Azure's curated environments (`AzureML-...`) and registries exist only in the cloud."""
    return reference.startswith(("azureml://", "azureml:AzureML-", "AzureML-"))


def _request_settings(src: Source, data: Mapping[str, Any],
                      not_applied: dict[str, Any]) -> RequestSettings:
    value = data.get("request_settings")
    if value is None:
        return RequestSettings()
    settings = mapping(src, value, "request_settings")
    check_keys(src, settings, "request_settings", REQUEST_KEYS, ("max_queue_wait_ms",),
               not_applied, "request_settings")
    defaults = RequestSettings()
    return RequestSettings(
        request_timeout_ms=integer(src, settings, "request_timeout_ms", "request_settings",
                                   defaults.request_timeout_ms, 1,
                                   validation.MAX_REQUEST_TIMEOUT_MS),
        max_concurrent_requests_per_instance=integer(
            src, settings, "max_concurrent_requests_per_instance", "request_settings",
            defaults.max_concurrent_requests_per_instance, 1),
    )


def _probe(src: Source, data: Mapping[str, Any], key: str) -> ProbeSettings:
    value = data.get(key)
    if value is None:
        return ProbeSettings()
    probe = mapping(src, value, key)
    check_keys(src, probe, key, validation.PROBE_LOWEST, (), {}, key)
    defaults = ProbeSettings()
    values = {name: integer(src, probe, name, key, getattr(defaults, name), lowest)
              for name, lowest in validation.PROBE_LOWEST.items()}
    return ProbeSettings(**values)



def _batching(src: Source, data: Mapping[str, Any], settings: RequestSettings,
              external: bool) -> BatchingSettings | None:
    """scoregate's own key (no Azure equivalent): `batching: {max_batch_size, max_latency_ms}`;
    absent or null: off."""
    value = data.get("batching")
    if value is None:
        return None
    block = mapping(src, value, "batching")
    check_keys(src, block, "batching", validation.BATCHING_BOUNDS, (), {}, "batching")
    defaults = BatchingSettings()
    batching = BatchingSettings(**{
        name: integer(src, block, name, "batching", getattr(defaults, name), lowest, highest)
        for name, (lowest, highest) in validation.BATCHING_BOUNDS.items()})
    try:
        validation.check_batching(batching, settings, external, "this deployment")
    except ValidationError as error:
        key = {"batching-latency": "batching.max_latency_ms",
               "batching-concurrency": "batching.max_batch_size"}.get(error.rule, "batching")
        raise src.invalid(key, error) from None
    return batching


def _instance_count(src: Source, data: Mapping[str, Any], scale: ScaleSettings | None) -> int:
    """Fixed, or an autoscaled deployment's first count: within its bounds (at least 1, so a
    create proves the scoring script starts), by default the lower bound."""
    if scale is None:
        return integer(src, data, "instance_count", "", 1, 1)
    lowest = max(1, scale.min_instances)
    count = integer(src, data, "instance_count", "", lowest, 1)
    if not lowest <= count <= scale.max_instances:
        raise src.error("instance_count", f"an autoscaled deployment's instance_count is its "
                                          f"first count: from max(1, min_instances) to "
                                          f"max_instances ({lowest} to {scale.max_instances}), "
                                          f"got {count}; leave it out to start at {lowest}")
    return count


def _scale_settings(src: Source, data: Mapping[str, Any],
                    external: bool) -> ScaleSettings | None:
    """Azure's `scale_settings` (docs/autoscaling.md); None for `type: default` or none."""
    value = data.get("scale_settings")
    if value is None:
        return None
    block = mapping(src, value, "scale_settings")
    kind = text(src, block, "type", "scale_settings", SCALE_DEFAULT) or SCALE_DEFAULT
    if kind not in SCALE_TYPES:
        raise src.error("scale_settings.type", f"expected one of {', '.join(SCALE_TYPES)}, "
                                               f"got {kind!r}")
    if kind == SCALE_DEFAULT:
        check_keys(src, block, "scale_settings", ("type",), (), {},
                   "scale_settings of type default (a fixed instance_count)")
        return None
    check_keys(src, block, "scale_settings", ("type", *validation.SCALE_BOUNDS), (), {},
               "scale_settings")
    defaults = ScaleSettings()
    scale = ScaleSettings(kind, **{
        name: integer(src, block, name, "scale_settings", getattr(defaults, name), lowest,
                      highest)
        for name, (lowest, highest) in validation.SCALE_BOUNDS.items()})
    try:
        validation.check_scale_settings(scale, external, "this deployment")
    except ValidationError as error:
        key = "scale_settings.min_instances" if "min_instances of" in error.message else (
            "scale_settings")
        raise src.invalid(key, error) from None
    return scale


def _rolling_update(src: Source, data: Mapping[str, Any]) -> RollingUpdate:
    """scoregate's own key (SageMaker's rolling deployment, Kubernetes' strategy):
    `rolling_update: {max_surge, max_unavailable, bake_s, max_error_rate, max_latency_factor,
    min_requests}`; absent: surge 1, unavailable 0, no bake (docs/rolling-updates.md)."""
    value = data.get("rolling_update")
    if value is None:
        return RollingUpdate()
    block = mapping(src, value, "rolling_update")
    check_keys(src, block, "rolling_update", ROLLING_KEYS, (), {}, "rolling_update")
    update = RollingUpdate(**{name: block[name] for name in ROLLING_KEYS if name in block})
    try:
        validation.check_rolling_update(update, "this deployment")
    except ValidationError as error:
        named = [name for name in ROLLING_KEYS if f"rolling_update.{name} " in str(error)]
        raise src.invalid(f"rolling_update.{named[0]}" if named else "rolling_update",
                          error) from None
    return update
