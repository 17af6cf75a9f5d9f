from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.errors import ValidationError
from control_plane.specs.resources import (
    DeploymentSpec,
    EndpointSpec,
    ProbeSettings,
    RequestSettings,
)
from control_plane.specs.validation import (
    check_can_delete_deployment,
    check_deployment_count,
    parse_traffic,
    validate_deployment,
    validate_endpoint,
    validate_mirror,
    validate_name,
    validate_traffic,
)

NAMES = ["blue", "green", "red"]


def refused(rule: str, call: Callable[[], object]) -> str:
    with pytest.raises(ValidationError) as caught:
        call()
    assert caught.value.rule == rule, caught.value.message
    return caught.value.message


@pytest.mark.parametrize("name", ["abc", "my-endpoint", "a1-b2-c3", "A" * 32, "Blue2"])
def test_valid_names(name: str) -> None:
    validate_name("endpoint", name)


@pytest.mark.parametrize(
    "name", ["ab", "a" * 33, "1abc", "-abc", "abc-", "a--b", "ab_c", "ab c", "blüe", "", 123, None]
)
def test_invalid_names_are_refused(name: Any) -> None:
    message = refused("name", lambda: validate_name("deployment", name))
    assert "deployment name" in message and "3 to 32" in message


def test_parse_traffic_accepts_spaces_and_commas() -> None:
    assert parse_traffic("blue=90 green=10") == {"blue": 90, "green": 10}
    assert parse_traffic(" blue=0,green=100 ") == {"blue": 0, "green": 100}
    assert parse_traffic("blue=90, ,green=10") == {"blue": 90, "green": 10}
    assert parse_traffic("") == {}


@pytest.mark.parametrize(
    "text",
    [
        "blue=9.5",
        "blue=ten",
        "blue=-5",
        "blue=",
        "blue:90",
        "=90",
        "blue==90",
        "blue=90 blue=10",
        "blue=٣",
    ],
)
def test_parse_traffic_refuses_non_integers(text: str) -> None:
    refused("traffic-integers", lambda: parse_traffic(text))


def test_traffic_total_message_names_values() -> None:
    message = refused("traffic-total", lambda: validate_traffic({"blue": 90, "green": 20}, NAMES))
    assert message == "traffic must total 0 or 100, got 110 (blue=90, green=20)"


def test_traffic_accepts_0_and_100() -> None:
    validate_traffic({"blue": 0, "green": 0}, NAMES)
    validate_traffic({"blue": 90, "green": 10}, NAMES)
    validate_traffic({}, NAMES)


@pytest.mark.parametrize(
    "traffic",
    [
        {"blue": 50.0, "green": 50},
        {"blue": "100"},
        {"blue": True},
        {"blue": -10, "green": 110},
        ["blue"],
        {1: 100},
        {"blue": None},
    ],
)
def test_traffic_refuses_non_integers(traffic: Any) -> None:
    refused("traffic-integers", lambda: validate_traffic(traffic, NAMES))


def test_traffic_refuses_unknown_deployment() -> None:
    message = refused(
        "traffic-unknown-deployment", lambda: validate_traffic({"blue": 90, "purple": 10}, NAMES)
    )
    assert "purple" in message and "blue, green, red" in message


def test_traffic_refuses_live_traffic_on_the_mirror() -> None:
    message = refused(
        "mirror-has-live-traffic",
        lambda: validate_traffic({"blue": 90, "green": 10}, NAMES, {"green": 10}),
    )
    assert "green" in message


def test_mirror_single() -> None:
    message = refused(
        "mirror-single", lambda: validate_mirror({"green": 10, "red": 5}, NAMES, {"blue": 100})
    )
    assert "green=10, red=5" in message
    validate_mirror({"green": 10, "red": 0}, NAMES, {"blue": 100})


@pytest.mark.parametrize("percent", [51, 100, 150])
def test_mirror_max_50(percent: int) -> None:
    message = refused("mirror-max-50", lambda: validate_mirror({"green": percent}, NAMES))
    assert f"green={percent}" in message
    validate_mirror({"green": 50}, NAMES)


def test_mirror_has_live_traffic() -> None:
    refused(
        "mirror-has-live-traffic",
        lambda: validate_mirror({"green": 10}, NAMES, {"blue": 90, "green": 10}),
    )
    validate_mirror({"green": 0}, NAMES, {"blue": 90, "green": 10})  # 0 means off


def test_mirror_unknown_deployment() -> None:
    refused("mirror-unknown-deployment", lambda: validate_mirror({"purple": 10}, NAMES))


@pytest.mark.parametrize("mirror", [{"green": 5.5}, {"green": -1}, "green=10"])
def test_mirror_refuses_non_integers(mirror: Any) -> None:
    refused("traffic-integers", lambda: validate_mirror(mirror, NAMES))


def test_endpoint_auth_mode() -> None:
    message = refused(
        "auth-mode", lambda: validate_endpoint(EndpointSpec("my-endpoint", auth_mode="aad"), [])
    )
    assert "'aad'" in message and "key, aml_token" in message
    validate_endpoint(EndpointSpec("my-endpoint", auth_mode="aml_token"), [])


def test_endpoint_checks_name_traffic_and_mirror() -> None:
    refused("name", lambda: validate_endpoint(EndpointSpec("x"), []))
    refused(
        "traffic-total",
        lambda: validate_endpoint(EndpointSpec("my-endpoint", traffic={"blue": 10}), NAMES),
    )
    refused(
        "mirror-max-50",
        lambda: validate_endpoint(
            EndpointSpec("my-endpoint", traffic={"blue": 100}, mirror_traffic={"green": 60}), NAMES
        ),
    )


def deployment(**changes: Any) -> DeploymentSpec:
    return DeploymentSpec("blue", "my-endpoint").with_changes(**changes)


@pytest.mark.parametrize("timeout", [0, -1, 180_001, 5000.0, "5000"])
def test_request_timeout(timeout: Any) -> None:
    message = refused(
        "request-timeout",
        lambda: validate_deployment(
            deployment(request_settings=RequestSettings(request_timeout_ms=timeout))
        ),
    )
    assert "180000" in message and repr(timeout) in message


def test_request_timeout_bounds_are_inclusive() -> None:
    for timeout in (1, 180_000):
        validate_deployment(
            deployment(request_settings=RequestSettings(request_timeout_ms=timeout))
        )


def test_max_concurrent() -> None:
    refused(
        "max-concurrent",
        lambda: validate_deployment(
            deployment(request_settings=RequestSettings(max_concurrent_requests_per_instance=0))
        ),
    )


@pytest.mark.parametrize("count", [0, -1, 1.5])
def test_instance_count(count: Any) -> None:
    refused("instance-count", lambda: validate_deployment(deployment(instance_count=count)))


def test_instance_count_is_ignored_for_external_deployments() -> None:
    validate_deployment(deployment(instance_count=0, urls=("http://127.0.0.1:9000",)))


@pytest.mark.parametrize(
    "field_name, value",
    [
        ("period", 0),
        ("timeout", -1),
        ("failure_threshold", 0),
        ("success_threshold", 1.5),
        ("initial_delay", -1),
    ],
)
@pytest.mark.parametrize("which", ["liveness_probe", "readiness_probe"])
def test_probe(which: str, field_name: str, value: Any) -> None:
    probe = ProbeSettings(**{field_name: value})
    message = refused("probe", lambda: validate_deployment(deployment(**{which: probe})))
    assert f"{which}.{field_name}" in message


def test_probe_initial_delay_may_be_zero() -> None:
    validate_deployment(deployment(readiness_probe=ProbeSettings(initial_delay=0)))


@pytest.mark.parametrize("model_type", ["pickle", "", 3])
def test_model_type(model_type: Any) -> None:
    message = refused("model-type", lambda: validate_deployment(deployment(model_type=model_type)))
    assert "custom_model, mlflow_model, triton_model" in message


def test_mlflow_model_without_a_script_needs_a_model() -> None:
    no_code = deployment(model_type="mlflow_model", model_path="/models/model")
    assert no_code.serves_mlflow_model
    validate_deployment(no_code)
    refused("model-type", lambda: validate_deployment(no_code.with_changes(model_path=None)))
    validate_deployment(no_code.with_changes(model_path=None, model_ref="azureml:m@latest"))


def test_a_bound_reference_without_a_script_must_be_an_mlflow_model() -> None:
    """`model: azureml:m@latest` without code loads (its type is not known yet); once the
    registry bound it to a custom_model, the store's write refuses it."""
    unbound = deployment(model_ref="azureml:m@latest")
    validate_deployment(unbound)
    bound = unbound.with_changes(model_ref="azureml:m:2", model_path="/registry/m/model",
                                 model_type="custom_model")
    message = refused("model-type", lambda: validate_deployment(bound))
    assert "azureml:m:2 is a custom_model" in message
    validate_deployment(bound.with_changes(model_type="mlflow_model"))
    validate_deployment(bound.with_changes(code_dir="/code", scoring_script="score.py"))


def test_deployment_names_are_checked() -> None:
    refused("name", lambda: validate_deployment(deployment(name="b")))
    refused("name", lambda: validate_deployment(deployment(endpoint_name="my_endpoint")))


def test_max_deployments() -> None:
    check_deployment_count(20)
    message = refused("max-deployments", lambda: check_deployment_count(21))
    assert "20" in message and "21" in message


def test_delete_live_traffic() -> None:
    spec = EndpointSpec(
        "my-endpoint", traffic={"blue": 100, "green": 0}, mirror_traffic={"red": 10}
    )
    message = refused("delete-live-traffic", lambda: check_can_delete_deployment(spec, "blue"))
    assert "100%" in message and "blue" in message
    refused("delete-live-traffic", lambda: check_can_delete_deployment(spec, "red"))
    check_can_delete_deployment(spec, "green")


# Properties: whatever the input, only ValidationError escapes, and what passes obeys the rules.

_names = st.sampled_from(NAMES + ["purple", "", "a=b"])
_values = st.one_of(
    st.integers(-200, 200),
    st.floats(allow_nan=False),
    st.text(max_size=3),
    st.none(),
    st.booleans(),
)
_maps = st.dictionaries(_names, _values, max_size=4)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(alphabet="bluegren=0123456789 ,.:-\t", max_size=40),
                 st.text(max_size=60)))  # near-misses of the syntax, and text in any alphabet
def test_parse_traffic_only_raises_validation_error(text: str) -> None:
    try:
        parsed = parse_traffic(text)
    except ValidationError as error:
        assert error.rule == "traffic-integers"
        return
    assert all(type(v) is int and v >= 0 for v in parsed.values())
    assert all(str(v).isascii() for v in parsed.values())
    assert all(name and "=" not in name for name in parsed)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from(NAMES), st.integers(0, 100), max_size=3),
    st.sampled_from([" ", ",", ", ", "  ,"]),
)
def test_parse_traffic_round_trips(traffic: dict[str, int], separator: str) -> None:
    text = separator.join(f"{name}={percent}" for name, percent in traffic.items())
    assert parse_traffic(text) == traffic


@settings(max_examples=400, deadline=None)
@given(_maps, _maps)
def test_traffic_and_mirror_only_raise_validation_error(traffic: Any, mirror: Any) -> None:
    checks: list[tuple[Callable[[], None], Any]] = [
        (lambda: validate_traffic(traffic, NAMES, mirror), traffic),
        (lambda: validate_mirror(mirror, NAMES, traffic), mirror),
    ]
    for check, checked in checks:
        try:
            check()
        except ValidationError:
            continue
        assert all(name in NAMES for name in checked)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(st.sampled_from(NAMES), st.integers(0, 100), max_size=3),
    st.dictionaries(st.sampled_from(NAMES), st.integers(0, 100), max_size=3),
)
def test_accepted_traffic_and_mirror_obey_azure_rules(
    traffic: dict[str, int], mirror: dict[str, int]
) -> None:
    try:
        validate_traffic(traffic, NAMES, mirror)
        validate_mirror(mirror, NAMES, traffic)
    except ValidationError:
        accepted = False
    else:
        accepted = True
    live = {n for n, p in traffic.items() if p > 0}
    mirrored = {n: p for n, p in mirror.items() if p > 0}
    obeys = (
        sum(traffic.values()) in (0, 100)
        and len(mirrored) <= 1
        and all(p <= 50 for p in mirrored.values())
        and not live & set(mirrored)
    )
    assert accepted == obeys
