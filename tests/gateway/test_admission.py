"""In-flight counts of gateway/admission.py and the 429 rule they decide (pure)."""

from __future__ import annotations

import pytest

from gateway.admission import Admission, max_in_flight
from gateway.errors import GatewayError
from gateway.snapshot import DeploymentRoute, InstanceRoute

KEY = ("main", "blue")


def blue(instances: int, per_instance: int) -> DeploymentRoute:
    routes = tuple(InstanceRoute(f"blue-{i}", f"http://127.0.0.1:{9000 + i}")
                   for i in range(instances))
    return DeploymentRoute("blue", "main", routes,
                           max_concurrent_requests_per_instance=per_instance)


def test_the_limit_is_twice_max_concurrent_times_ready_instances() -> None:
    assert max_in_flight(blue(3, 2)) == 12
    assert max_in_flight(blue(0, 4)) == 0


def test_admit_answers_429_once_full_and_again_after_a_release() -> None:
    admission, deployment = Admission(), blue(1, 1)
    admission.admit(deployment, KEY)
    admission.admit(deployment, KEY)
    with pytest.raises(GatewayError, match=r"limit 2: 2 x max_concurrent") as refused:
        admission.admit(deployment, KEY)
    assert refused.value.status == 429
    admission.release(KEY)
    admission.admit(deployment, KEY)
    assert admission.deployment(KEY) == 2


def test_mirror_copies_count_for_the_gauge_but_not_for_the_429_rule() -> None:
    admission, deployment = Admission(), blue(1, 1)
    for _ in range(3):
        admission.start_mirror(KEY)
    admission.admit(deployment, KEY)
    assert admission.deployment(KEY) == 4
    admission.end_mirror(KEY)
    assert admission.deployment(KEY) == 3


def test_instance_counts_drop_to_absent_at_zero() -> None:
    admission = Admission()
    admission.start_instance("blue-0")
    admission.start_instance("blue-0")
    assert admission.instance("blue-0") == 2 and dict(admission.instances) == {"blue-0": 2}
    admission.end_instance("blue-0")
    admission.end_instance("blue-0")
    assert admission.instance("blue-0") == 0 and dict(admission.instances) == {}
