"""The control plane's own records: what an operator declared, as plain frozen dataclasses.

`yaml_loader` builds them from Azure ML YAML, `store` keeps them in SQLite (as the JSON of
`to_dict`), `compile` turns them into a `gateway.snapshot.RoutingSnapshot`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

AUTH_MODES = ("key", "aml_token")
# Azure ML's model asset types; a deployment of an `mlflow_model` may omit code_configuration.
MODEL_TYPES = ("custom_model", "mlflow_model", "triton_model")
MLFLOW_MODEL = "mlflow_model"


@dataclass(frozen=True)
class ProbeSettings:
    """Azure ML's probe settings, in seconds and counts, with Azure's defaults."""

    initial_delay: int = 10
    period: int = 10
    timeout: int = 2
    success_threshold: int = 1
    failure_threshold: int = 30


@dataclass(frozen=True)
class RequestSettings:
    request_timeout_ms: int = 5000  # at most 180000
    max_concurrent_requests_per_instance: int = 1


@dataclass(frozen=True)
class BatchingSettings:
    """Dynamic batching in the instances' scoring server (docs/batching.md): a batch closes at
    `max_batch_size` requests or `max_latency_ms` after its first one, whichever comes first."""

    max_batch_size: int = 32
    max_latency_ms: int = 10


SCALE_DEFAULT = "default"  # Azure's fixed `instance_count`
SCALE_TARGET_UTILIZATION = "target_utilization"
SCALE_TYPES = (SCALE_DEFAULT, SCALE_TARGET_UTILIZATION)


@dataclass(frozen=True)
class ScaleSettings:
    """Azure's `scale_settings: {type: target_utilization, ...}` (docs/autoscaling.md): the
    instance count follows the requests in flight, kept between `min_instances` and
    `max_instances` (0 scales to zero). Azure's kubernetes defaults; the two cooldowns are
    scoregate's (SageMaker's ScaleOutCooldown / ScaleInCooldown), in seconds. A deployment
    with `type: default` carries None instead: its `instance_count` is fixed."""

    type: str = SCALE_TARGET_UTILIZATION
    min_instances: int = 1
    max_instances: int = 1
    polling_interval: int = 1  # seconds; utilisation is averaged over it
    target_utilization_percentage: int = 70
    scale_out_cooldown: int = 30  # seconds after a scale-out before the next one
    scale_in_cooldown: int = 300  # seconds after any scaling before a scale-in

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ScaleSettings | None:
        """None for `type: default` (or no settings): a fixed instance count."""
        if not data or data.get("type", SCALE_TARGET_UTILIZATION) == SCALE_DEFAULT:
            return None
        return cls(**data)


@dataclass(frozen=True)
class RollingUpdate:
    """How an update that replaces instances rolls (docs/rolling-updates.md): at most
    `max_surge` instances above `instance_count` and `max_unavailable` below it, each a count
    (`2`) or a percent of `instance_count` (`"25%"`; surge rounds up, unavailable down, as in
    Kubernetes). Each batch bakes `bake_s` seconds (0: none) and is judged against the old
    instances: error rate at most `max_error_rate`, p99 at most `max_latency_factor` × the
    old instances' p99 (None: off), once it saw `min_requests` requests."""

    max_surge: int | str = 1
    max_unavailable: int | str = 0
    bake_s: float = 0.0
    max_error_rate: float | None = 0.01
    max_latency_factor: float | None = None
    min_requests: int = 10


@dataclass(frozen=True)
class EndpointSpec:
    name: str
    auth_mode: str = "key"
    traffic: dict[str, int] = field(default_factory=dict)
    mirror_traffic: dict[str, int] = field(default_factory=dict)
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    # Cloud-only keys, kept as given and shown as "not applied here" (e.g. "$schema").
    not_applied: dict[str, Any] = field(default_factory=dict)
    # Created with `--local`, as Azure's local endpoints: requests need no key, and only while
    # the scoring listener is bound to loopback (otherwise `auth_mode` applies).
    local: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EndpointSpec:
        return cls(**data)

    def with_changes(self, **changes: Any) -> EndpointSpec:
        return replace(self, **changes)


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    endpoint_name: str
    # Absolute, resolved paths (relative ones resolve against the YAML file's folder).
    # A registered model's `model_path` is its stored artifact (the registry sets it when the
    # deployment is created or updated), so instances need no registry to find it.
    model_path: str | None = None
    code_dir: str | None = None
    scoring_script: str | None = None
    environment_variables: dict[str, str] = field(default_factory=dict)
    instance_count: int = 1
    request_settings: RequestSettings = field(default_factory=RequestSettings)
    liveness_probe: ProbeSettings = field(default_factory=ProbeSettings)
    readiness_probe: ProbeSettings = field(default_factory=ProbeSettings)
    # External scoring servers: when set, nothing is launched; these URLs are the instances.
    urls: tuple[str, ...] = ()
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    environment: Any = None  # kept as given; only its cloud-only parts are "not applied here"
    not_applied: dict[str, Any] = field(default_factory=dict)
    # The registered model version served, `azureml:name:version`, once resolved. In a
    # request: a reference to resolve (`azureml:name@latest`, `name:version`, ...) or, with
    # `model_path`, the name (and version) an inline model is registered as.
    model_ref: str | None = None
    model_type: str | None = None  # custom_model | mlflow_model | triton_model; None: not said
    batching: BatchingSettings | None = None  # None: every request scored alone
    scale_settings: ScaleSettings | None = None  # None: `type: default`, a fixed instance_count
    rolling_update: RollingUpdate = field(default_factory=RollingUpdate)

    @property
    def is_external(self) -> bool:
        return bool(self.urls)

    @property
    def autoscaled(self) -> bool:
        return self.scale_settings is not None

    @property
    def serves_mlflow_model(self) -> bool:
        """Azure's no-code deployment: an MLflow model and no scoring script, so scoregate's
        own MLflow scoring server loads the model with `mlflow.pyfunc`."""
        return self.model_type == MLFLOW_MODEL and self.code_dir is None and not self.urls

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["urls"] = list(self.urls)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeploymentSpec:
        data = dict(data)
        data["request_settings"] = RequestSettings(**data.get("request_settings") or {})
        data["liveness_probe"] = ProbeSettings(**data.get("liveness_probe") or {})
        data["readiness_probe"] = ProbeSettings(**data.get("readiness_probe") or {})
        data["urls"] = tuple(data.get("urls") or ())
        batching = data.get("batching")
        data["batching"] = None if batching is None else BatchingSettings(**batching)
        data["scale_settings"] = ScaleSettings.from_dict(data.get("scale_settings"))
        data["rolling_update"] = RollingUpdate(**(data.get("rolling_update") or {}))
        return cls(**data)

    def with_changes(self, **changes: Any) -> DeploymentSpec:
        return replace(self, **changes)
