"""Azure ML's rules for names, traffic, mirror traffic and deployment settings.

Pure functions: each one either returns or raises `ValidationError(rule, message)`, whatever
it is given (the admin API passes decoded JSON straight in), so callers never see a
`TypeError` from a bad value. The message names the rule in words and the offending values.

Choices where Azure is silent or where scoregate differs:
- `instance_count` is at least 1 for managed deployments (Azure has no scale-to-zero for
  managed online deployments); external deployments (`urls`) ignore it.
- probe `initial_delay` may be 0 (start probing at once); every other probe value is ≥ 1.
- a mirror entry of 0 means "mirror off", so `{green: 0}` is accepted even beside live traffic.
- an external URL must be printable ASCII with no space (rule `url`): it is refused, not
  percent-encoded, because guessing which `%` the operator meant literally is worse than asking
  (a space used to reach the upstream as `POST /a b HTTP/1.1`, a non-Latin-1 character broke
  every request). Percent-encode such characters in the YAML.
- `batching` (scoregate's own, docs/batching.md): `max_batch_size` 1–1024, `max_latency_ms`
  1–1000 (a longer wait is no longer online scoring) and below `request_timeout_ms` (a lone
  request must be able to finish after waiting); the gateway must be able to send an instance a
  full batch: it admits 2 × `max_concurrent_requests_per_instance` requests per instance, so that
  must reach `max_batch_size`. External deployments (`urls`) cannot batch: nothing is launched.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from types import MappingProxyType
from typing import Any

from control_plane.errors import ValidationError, clip, echo
from control_plane.specs.resources import (
    AUTH_MODES,
    MLFLOW_MODEL,
    MODEL_TYPES,
    SCALE_TYPES,
    BatchingSettings,
    DeploymentSpec,
    EndpointSpec,
    ProbeSettings,
    RequestSettings,
    RollingUpdate,
    ScaleSettings,
)

MAX_DEPLOYMENTS = 20
MAX_MIRROR_PERCENT = 50
MAX_REQUEST_TIMEOUT_MS = 180_000
# Bounds of `batching` (the scoring servers' SCOREGATE_BATCHING refuses anything outside them).
BATCHING_BOUNDS: Mapping[str, tuple[int, int]] = MappingProxyType({
    "max_batch_size": (1, 1024), "max_latency_ms": (1, 1000)})
# Bounds of the numbers in `scale_settings` (the YAML loader and the OpenAPI document use them).
SCALE_BOUNDS: Mapping[str, tuple[int, int]] = MappingProxyType({
    "min_instances": (0, 1000), "max_instances": (1, 1000), "polling_interval": (1, 3600),
    "target_utilization_percentage": (1, 100), "scale_out_cooldown": (0, 86400),
    "scale_in_cooldown": (0, 86400)})
# The lowest value of each probe setting (the YAML loader and the OpenAPI document use it too).
PROBE_LOWEST: Mapping[str, int] = MappingProxyType({
    "initial_delay": 0, "period": 1, "timeout": 1, "success_threshold": 1, "failure_threshold": 1,
})

_NAME = re.compile(r"[A-Za-z](?:-?[A-Za-z0-9])*")
_TRAFFIC_ITEM = re.compile(r"([^=\s,]*)=([^=\s,]*)")
_SEPARATORS = re.compile(r"[\s,]+")
_URL_BAD = re.compile(r"[^!-~]")  # anything but printable ASCII without space


def validate_name(kind: str, name: object) -> None:
    """3–32 characters: a letter, then letters, digits, single dashes; a letter or digit last."""
    if not isinstance(name, str) or not 3 <= len(name) <= 32 or not _NAME.fullmatch(name):
        raise ValidationError(
            "name",
            f"{kind} name {echo(name, 60)} is not valid: names have 3 to 32 characters, "
            "start with a "
            "letter, contain only letters, digits and single dashes, and end with a letter or "
            "digit",
        )


def parse_traffic(text: str) -> dict[str, int]:
    """`"blue=90 green=10"` (spaces and/or commas between items) → `{"blue": 90, "green": 10}`."""
    if not isinstance(text, str):
        raise ValidationError(
            "traffic-integers", f"traffic must be text like 'blue=90 green=10', got {echo(text)}"
        )
    result: dict[str, int] = {}
    for item in _SEPARATORS.split(text.strip()):
        if not item:
            continue
        match = _TRAFFIC_ITEM.fullmatch(item)
        if match is None or not match.group(1):
            raise ValidationError(
                "traffic-integers",
                f"traffic item {echo(item)} is not of the form name=percent "
                "(e.g. 'blue=90 green=10')",
            )
        name, value = match.groups()
        if not value.isascii() or not value.isdigit():
            raise ValidationError(
                "traffic-integers",
                "traffic values must be whole numbers from 0 to 100, "
                f"got {clip(name)}={echo(value)}",
            )
        if name in result:
            raise ValidationError("traffic-integers",
                                  f"traffic names deployment {echo(name)} twice")
        result[name] = int(value)
    return result


def validate_traffic(
    traffic: object, deployment_names: Collection[str], mirror: object = None
) -> None:
    """Integer percents that total 0 or 100, naming existing deployments, none also mirrored."""
    values = _percent_map("traffic", traffic, 100)
    _check_known("traffic-unknown-deployment", "traffic", values, deployment_names)
    total = sum(values.values())
    if total not in (0, 100):
        raise ValidationError(
            "traffic-total",
            f"traffic must total 0 or 100, got {total} ({_describe(values)})",
        )
    mirrored = _positive(_percent_map("mirror_traffic", mirror or {}, None))
    _check_not_both(_positive(values), mirrored)


def validate_mirror(
    mirror: object, deployment_names: Collection[str], traffic: object = None
) -> None:
    """One deployment, at most 50%, existing, and not one that carries live traffic."""
    values = _percent_map("mirror_traffic", mirror, None)
    _check_known("mirror-unknown-deployment", "mirror_traffic", values, deployment_names)
    positive = _positive(values)
    if len(positive) > 1:
        raise ValidationError(
            "mirror-single",
            f"mirror_traffic may name only one deployment, got {_describe(positive)}",
        )
    for name, percent in positive.items():
        if percent > MAX_MIRROR_PERCENT:
            raise ValidationError(
                "mirror-max-50",
                f"mirror_traffic may be at most {MAX_MIRROR_PERCENT}%, got {name}={percent}",
            )
    _check_not_both(_positive(_percent_map("traffic", traffic or {}, 100)), positive)


def validate_endpoint(spec: EndpointSpec, deployment_names: Collection[str]) -> None:
    validate_name("endpoint", spec.name)
    if spec.auth_mode not in AUTH_MODES:
        raise ValidationError(
            "auth-mode",
            f"auth_mode of endpoint {spec.name} must be one of {', '.join(AUTH_MODES)}, "
            f"got {echo(spec.auth_mode)}",
        )
    validate_traffic(spec.traffic, deployment_names, spec.mirror_traffic)
    validate_mirror(spec.mirror_traffic, deployment_names, spec.traffic)


def validate_deployment(spec: DeploymentSpec) -> None:
    validate_name("deployment", spec.name)
    validate_name("endpoint", spec.endpoint_name)
    where = f"deployment {spec.name}"
    settings = spec.request_settings
    _require_int(
        "request-timeout",
        f"request_settings.request_timeout_ms of {where}",
        settings.request_timeout_ms,
        1,
        MAX_REQUEST_TIMEOUT_MS,
    )
    _require_int(
        "max-concurrent",
        f"request_settings.max_concurrent_requests_per_instance of {where}",
        settings.max_concurrent_requests_per_instance,
        1,
    )
    for url in spec.urls:
        validate_url(url)
    if not spec.is_external:
        _require_int("instance-count", f"instance_count of {where}", spec.instance_count, 1)
    _check_model_type(where, spec)
    _check_probe(where, "liveness_probe", spec.liveness_probe)
    _check_probe(where, "readiness_probe", spec.readiness_probe)
    check_rolling_update(spec.rolling_update, where)
    if spec.batching is not None:
        for field_name, (lowest, highest) in BATCHING_BOUNDS.items():
            _require_int("batching", f"batching.{field_name} of {where}",
                         getattr(spec.batching, field_name), lowest, highest)
        check_batching(spec.batching, spec.request_settings, spec.is_external, where)
    if spec.scale_settings is not None:
        check_scale_settings(spec.scale_settings, spec.is_external, where)


def check_scale_settings(scale: ScaleSettings, external: bool, where: str) -> None:
    """Autoscaling's rules (rule `scale-settings`), for YAML and JSON bodies alike. A stored
    `instance_count` outside the bounds is no error: the autoscaler clamps it (a patch of
    `min_instances` alone must not need a new `instance_count`, which it refuses)."""
    if scale.type not in SCALE_TYPES:
        raise ValidationError("scale-settings", f"scale_settings.type of {where} must be one of "
                              f"{', '.join(SCALE_TYPES)}, got {echo(scale.type)}")
    for field_name, (lowest, highest) in SCALE_BOUNDS.items():
        _require_int("scale-settings", f"scale_settings.{field_name} of {where}",
                     getattr(scale, field_name), lowest, highest)
    if external:
        raise ValidationError("scale-settings", f"scale_settings of {where}: an external scoring "
                              "server (url/urls) is not launched by scoregate, so it cannot be "
                              "scaled; remove scale_settings")
    if scale.min_instances > scale.max_instances:
        raise ValidationError("scale-settings", f"scale_settings.min_instances of {where} "
                              f"({scale.min_instances}) is above max_instances "
                              f"({scale.max_instances})")


_PERCENT = re.compile(r"(\d{1,3})%")


def rolling_counts(update: RollingUpdate, instance_count: int) -> tuple[int, int]:
    """(surge, unavailable) as instance counts for `instance_count` instances: a percent of
    it, surge rounded up and unavailable down (Kubernetes' rule); at least one of them is 1 or
    more, so a rolling update always moves."""
    surge = _count(update.max_surge, instance_count, up=True)
    unavailable = min(_count(update.max_unavailable, instance_count, up=False), instance_count)
    if surge == 0 and unavailable == 0:
        surge = 1  # e.g. 10% of 3 unavailable rounds to 0 with surge 0: still one at a time
    return surge, unavailable


def _count(value: int | str, instance_count: int, *, up: bool) -> int:
    if isinstance(value, int):
        return value
    percent = int(value[:-1])
    return -(-percent * instance_count // 100) if up else percent * instance_count // 100


def check_rolling_update(update: RollingUpdate, where: str) -> None:
    """`max_surge` / `max_unavailable`: a whole number ≥ 0 or a percent 0–100% (not both 0);
    `bake_s` 0–3600; `max_error_rate` 0–1; `max_latency_factor` ≥ 1; `min_requests` ≥ 0."""
    for name in ("max_surge", "max_unavailable"):
        value = getattr(update, name)
        if not _count_or_percent(value):
            raise ValidationError("rolling-update", f"rolling_update.{name} of {where} must be "
                                  f"a whole number of instances (2) or a percent of "
                                  f"instance_count (\"25%\"), got {echo(value)}")
    if update.max_surge in (0, "0%") and update.max_unavailable in (0, "0%"):
        raise ValidationError("rolling-update", f"rolling_update of {where}: max_surge and "
                              "max_unavailable cannot both be 0 (nothing could be replaced)")
    _require_number(f"rolling_update.bake_s of {where}", update.bake_s, 0, 3600)
    if update.max_error_rate is not None:
        _require_number(f"rolling_update.max_error_rate of {where}", update.max_error_rate, 0, 1)
    if update.max_latency_factor is not None:
        _require_number(f"rolling_update.max_latency_factor of {where}",
                        update.max_latency_factor, 1, 1000)
    _require_int("rolling-update", f"rolling_update.min_requests of {where}",
                 update.min_requests, 0)


def _count_or_percent(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    match = _PERCENT.fullmatch(value) if isinstance(value, str) else None
    return match is not None and int(match.group(1)) <= 100


def _require_number(what: str, value: object, lowest: float, highest: float) -> None:
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not lowest <= value <= highest):
        raise ValidationError("rolling-update", f"{what} must be a number from {lowest:g} to "
                              f"{highest:g}, got {echo(value)}")


def check_batching(batching: BatchingSettings, settings: RequestSettings, external: bool,
                   where: str) -> None:
    """The rules between `batching` and the rest of a deployment (bounds checked before)."""
    if external:
        raise ValidationError("batching-external", f"batching of {where}: an external scoring "
                              "server (url/urls) is not launched by scoregate and batches on "
                              "its own; remove batching")
    if batching.max_latency_ms >= settings.request_timeout_ms:
        raise ValidationError(
            "batching-latency",
            f"batching.max_latency_ms of {where} ({batching.max_latency_ms}) must be below "
            f"request_settings.request_timeout_ms ({settings.request_timeout_ms}): a request "
            "waits for its batch before it is scored")
    admitted = 2 * settings.max_concurrent_requests_per_instance
    if batching.max_batch_size > admitted:
        needed = (batching.max_batch_size + 1) // 2
        raise ValidationError(
            "batching-concurrency",
            f"batching.max_batch_size of {where} ({batching.max_batch_size}) can never fill: "
            "the gateway sends an instance at most 2 x "
            "request_settings.max_concurrent_requests_per_instance requests at once "
            f"({admitted}); set max_concurrent_requests_per_instance to at least {needed}, or "
            f"max_batch_size to at most {admitted}")


def validate_url(url: object) -> None:
    """An external deployment URL goes into a request line as is: printable ASCII only, no
    space, no control character (checked before any URL parser, which would drop tabs and
    newlines silently)."""
    if not isinstance(url, str):
        raise ValidationError("url", f"a deployment URL must be text, got {type(url).__name__}")
    bad = _URL_BAD.search(url)
    if bad is not None:
        raise ValidationError(
            "url",
            f"URL {url[:200]!r} contains {bad.group()!r} at position {bad.start()}: URLs may hold "
            "printable ASCII only (no spaces, control or non-ASCII characters); percent-encode "
            "them (e.g. %20 for a space, %E4%B8%AD for 中)",
        )


def check_deployment_count(n: int) -> None:
    if n > MAX_DEPLOYMENTS:
        raise ValidationError(
            "max-deployments",
            f"an endpoint may have at most {MAX_DEPLOYMENTS} deployments, this change makes {n}",
        )


def check_can_delete_deployment(endpoint_spec: EndpointSpec, name: str) -> None:
    """A deployment that receives live (or mirror) traffic cannot be deleted: set it to 0 first."""
    live = endpoint_spec.traffic.get(name, 0)
    mirrored = endpoint_spec.mirror_traffic.get(name, 0)
    if live or mirrored:
        kind = "live traffic" if live else "mirror traffic"
        raise ValidationError(
            "delete-live-traffic",
            f"deployment {name} of endpoint {endpoint_spec.name} receives {live or mirrored}% "
            f"{kind}; set its {kind} to 0 before deleting it",
        )


def _check_model_type(where: str, spec: DeploymentSpec) -> None:
    """Only an MLflow model is served without a scoring script (Azure's no-code deployment),
    from its folder. A reference's type is known once the registry resolves it, so a bound
    deployment (reference and path) is checked here, inside the store's write."""
    if spec.model_type is not None and spec.model_type not in MODEL_TYPES:
        raise ValidationError("model-type", f"model type of {where} must be one of "
                              f"{', '.join(MODEL_TYPES)}, got {echo(spec.model_type)}")
    if spec.code_dir is not None or spec.urls:
        return
    if spec.serves_mlflow_model and not spec.model_path and not spec.model_ref:
        raise ValidationError("model-type", f"{where} has no scoring script, so its "
                              f"{MLFLOW_MODEL} is served as is and needs a model")
    if spec.model_ref and spec.model_path and spec.model_type != MLFLOW_MODEL:
        kind = spec.model_type or "custom_model"
        raise ValidationError("model-type", f"{where} has no scoring script, but its model "
                              f"{clip(str(spec.model_ref))} is a {kind}: only an "
                              f"{MLFLOW_MODEL} is served without code_configuration")


def _check_probe(where: str, which: str, probe: ProbeSettings) -> None:
    for field_name, value in vars(probe).items():
        _require_int("probe", f"{which}.{field_name} of {where}", value, PROBE_LOWEST[field_name])


def _require_int(
    rule: str, what: str, value: object, lowest: int, highest: int | None = None
) -> None:
    if not _int_between(value, lowest, highest):
        bounds = f"of at least {lowest}" if highest is None else f"from {lowest} to {highest}"
        raise ValidationError(rule, f"{what} must be a whole number {bounds}, got {echo(value)}")


def _percent_map(what: str, value: object, highest: int | None) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise ValidationError(
            "traffic-integers", f"{what} must map deployment names to percents, got {echo(value)}"
        )
    result: dict[str, int] = {}
    for name, percent in value.items():
        if not isinstance(name, str):
            raise ValidationError("traffic-integers",
                                  f"{what} names must be text, got {echo(name)}")
        if not _int_between(percent, 0, highest):
            bounds = "0 or more" if highest is None else f"from 0 to {highest}"
            raise ValidationError(
                "traffic-integers",
                f"{what} values must be whole numbers {bounds}, got {clip(name)}={echo(percent)}",
            )
        result[name] = percent
    return result


def _check_known(rule: str, what: str, values: Mapping[str, int], names: Collection[str]) -> None:
    unknown = sorted(name for name in values if name not in names)
    if unknown:
        known = ", ".join(sorted(names)) or "none"
        raise ValidationError(
            rule, f"{what} names unknown deployment(s) {clip(', '.join(unknown))} "
            f"(deployments: {known})"
        )


def _check_not_both(live: Mapping[str, int], mirrored: Mapping[str, int]) -> None:
    for name in sorted(set(live) & set(mirrored)):
        raise ValidationError(
            "mirror-has-live-traffic",
            f"deployment {name} cannot get mirror traffic ({mirrored[name]}%) while it has live "
            f"traffic ({live[name]}%): a deployment carries one or the other",
        )


def _positive(values: Mapping[str, int]) -> dict[str, int]:
    return {name: percent for name, percent in values.items() if percent > 0}


def _int_between(value: Any, lowest: int, highest: int | None) -> bool:
    if not isinstance(value, int) or isinstance(value, bool):
        return False
    return value >= lowest and (highest is None or value <= highest)


def _describe(values: Mapping[str, int]) -> str:
    return clip(", ".join(f"{name}={percent}" for name, percent in values.items())) or "empty"
