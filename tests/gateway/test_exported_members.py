"""`gateway.__all__` is the data plane's public surface: the control plane imports only these."""

import gateway

EXPECTED = {
    "AUTH_AML_TOKEN", "AUTH_KEY", "AUTH_NONE",
    "COMPARISON_OUTCOMES", "CompareSettings", "ComparisonReport", "MismatchPair",
    "DEFAULT_BODY_TIMEOUT_S", "DEFAULT_HEADER_TIMEOUT_S", "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_SEND_TIMEOUT_S", "RESERVED_FDS", "connection_cap", "render_metrics",
    "hardened_protocol",
    "instance_counts",
    "DeploymentRoute", "EndpointRoute", "GatewaySettings", "InstanceRoute", "RoutingSnapshot",
    "SnapshotHolder", "freeze",
    "GatewayOptions", "ScoringApp", "SettingsError",
    "ROLES", "ROLE_DIRECT", "ROLE_LIVE", "ROLE_MIRROR",
    "RequestCounts", "request_counts",
    "count_probe_failure", "count_restart", "publish_config", "set_ready_instances",
    "set_desired_instances", "count_scaling_decision",
    "bearer", "issue_token", "configure_logging",
    # serve --workers N (docs/workers.md)
    "FLEET_SLOTS", "FLEET_SAMPLES", "FLEET_TALLIES", "SharedCounts", "create_counts_fd",
    "deployment_slot_key",
    "demand_slot_key",
    "frame", "read_message", "snapshot_from_wire", "snapshot_to_wire", "merge_reports",
    "WorkerConfig", "ListenerLimits", "server_config",
}


def test_every_exported_name_exists() -> None:
    for name in gateway.__all__:
        assert hasattr(gateway, name), name


def test_exported_names_are_the_expected_ones() -> None:
    assert len(gateway.__all__) == len(set(gateway.__all__))  # no name listed twice
    assert set(gateway.__all__) == EXPECTED
