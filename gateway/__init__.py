"""scoregate's data plane: the scoring listener and what it measures.

The control plane imports the names below from `gateway` itself and nothing else: the app
and its options, the routing snapshot it publishes, the uvicorn protocol and its defaults,
the metric hooks of the supervisor, of `publish` and of autoscaling, the request counts a
rollout window reads, shadow comparison settings and reports, token issuing and logging
set-up, and the demand autoscaling samples (`ScoringApp.demand`). The modules behind them
(`gateway/http`, `gateway/shadow`, `gateway/telemetry`, ...) may change freely.
"""

from gateway.app import GatewayOptions, ScoringApp
from gateway.auth import bearer, issue_token
from gateway.errors import SettingsError
from gateway.fleet.comparisons import merge_reports
from gateway.fleet.config import WorkerConfig
from gateway.fleet.shared_counts import SLOTS as FLEET_SLOTS
from gateway.fleet.shared_counts import (
    SharedCounts,
    create_counts_fd,
    demand_slot_key,
    deployment_slot_key,
)
from gateway.fleet.wire import frame, read_message, snapshot_from_wire, snapshot_to_wire
from gateway.http.server_config import ListenerLimits, server_config
from gateway.http.server_protocol import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_HEADER_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_SEND_TIMEOUT_S,
    RESERVED_FDS,
    connection_cap,
    hardened_protocol,
)
from gateway.roles import ROLE_DIRECT, ROLE_LIVE, ROLE_MIRROR, ROLES
from gateway.shadow.pairing import ComparisonReport, MismatchPair
from gateway.shadow.rules import OUTCOMES as COMPARISON_OUTCOMES
from gateway.shadow.rules import CompareSettings
from gateway.snapshot import (
    AUTH_AML_TOKEN,
    AUTH_KEY,
    AUTH_NONE,
    DeploymentRoute,
    EndpointRoute,
    GatewaySettings,
    InstanceRoute,
    RoutingSnapshot,
    SnapshotHolder,
    freeze,
)
from gateway.telemetry.access_log import configure_logging
from gateway.telemetry.instances import FLEET_TALLIES, instance_counts
from gateway.telemetry.metrics import FLEET as FLEET_SAMPLES
from gateway.telemetry.metrics import (
    RequestCounts,
    count_probe_failure,
    count_restart,
    count_scaling_decision,
    publish_config,
    request_counts,
    set_desired_instances,
    set_ready_instances,
)
from gateway.telemetry.metrics import render as render_metrics

__all__ = [
    "AUTH_AML_TOKEN",
    "AUTH_KEY",
    "AUTH_NONE",
    "COMPARISON_OUTCOMES",
    "DEFAULT_BODY_TIMEOUT_S",
    "DEFAULT_HEADER_TIMEOUT_S",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_SEND_TIMEOUT_S",
    "FLEET_SAMPLES",
    "FLEET_SLOTS",
    "FLEET_TALLIES",
    "RESERVED_FDS",
    "ROLES",
    "ROLE_DIRECT",
    "ROLE_LIVE",
    "ROLE_MIRROR",
    "CompareSettings",
    "ComparisonReport",
    "DeploymentRoute",
    "EndpointRoute",
    "GatewayOptions",
    "GatewaySettings",
    "InstanceRoute",
    "ListenerLimits",
    "MismatchPair",
    "RequestCounts",
    "RoutingSnapshot",
    "ScoringApp",
    "SettingsError",
    "SharedCounts",
    "SnapshotHolder",
    "WorkerConfig",
    "bearer",
    "configure_logging",
    "connection_cap",
    "count_probe_failure",
    "count_restart",
    "count_scaling_decision",
    "create_counts_fd",
    "demand_slot_key",
    "deployment_slot_key",
    "frame",
    "freeze",
    "hardened_protocol",
    "instance_counts",
    "issue_token",
    "merge_reports",
    "publish_config",
    "read_message",
    "render_metrics",
    "request_counts",
    "server_config",
    "set_desired_instances",
    "set_ready_instances",
    "snapshot_from_wire",
    "snapshot_to_wire",
]
