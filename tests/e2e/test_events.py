"""Events through a real `scoregate serve`: the admin API's changes reach subscribers in order
after failures, survive kill -9 between the commit and the delivery, carry a signature that
verifies, and a receiver that never answers does not slow the admin API."""

from __future__ import annotations

import itertools
import signal
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from control_plane.events import SIGNATURE_HEADER, verify
from tests.support.event_receiver import Receiver, running_receiver
from tests.support.gateway import RunningGateway, start_serve, start_upstream
from tests.support.processes import ProcessGroup, wait_until

E = "events-endpoint"
FAST = ("--event-first-retry-s", "0.1", "--event-delivery-timeout-s", "60")


class Admin:
    def __init__(self, gateway: RunningGateway) -> None:
        token = (gateway.home / "admin_token").read_text().strip()
        self.client = httpx.Client(base_url=gateway.admin_url, timeout=60,
                                   headers={"Authorization": f"Bearer {token}"})

    def call(self, method: str, path: str, body: Any = None, ok: int = 200) -> Any:
        response = self.client.request(method, path, json=body)
        assert response.status_code == ok, response.text
        return response.json() if response.content else None

    def subscribe(self, receiver: Receiver, name: str, **fields: Any) -> dict[str, Any]:
        return dict(self.call("POST", "/v1/event-subscriptions", {
            "name": name, "endpoint": receiver.url, **fields}, ok=201))

    def events(self, **query: str) -> list[dict[str, Any]]:
        return list(self.client.get("/v1/events", params=query).json())


def make_endpoint(admin: Admin, upstream: str) -> None:
    admin.call("POST", "/v1/endpoints", {"name": E}, ok=201)
    for name in ("blue", "green"):
        admin.call("POST", f"/v1/endpoints/{E}/deployments",
                   {"name": name, "urls": [upstream + "/score"]}, ok=201)


def flip_traffic(admin: Admin, n: int) -> None:
    split = {"blue": 100} if n % 2 == 0 else {"blue": 50, "green": 50}
    admin.call("PUT", f"/v1/endpoints/{E}/traffic", split)


def test_a_failing_receiver_gets_every_change_in_order_signed(
        processes: ProcessGroup, tmp_path: Path) -> None:
    gateway = start_serve(processes, tmp_path / "home", extra=FAST)
    admin = Admin(gateway)
    upstream = start_upstream(processes, tmp_path)
    with running_receiver(fail_first=3) as receiver, running_receiver() as traffic_only:
        created = admin.subscribe(receiver, "every-change")
        admin.subscribe(traffic_only, "traffic-only",
                        event_types=["io.scoregate.traffic.changed"],
                        subject_begins_with=f"endpoints/{E}")
        assert "secret" not in admin.call("GET", "/v1/event-subscriptions/every-change")
        make_endpoint(admin, upstream)
        for n in range(6):
            flip_traffic(admin, n + 1)
        logged = admin.events()
        wait_until(lambda: len(receiver.accepted) == len(logged), timeout=60,
                   what="every event at the failing receiver")
        wait_until(lambda: len(traffic_only.accepted) == 6, timeout=60,
                   what="the traffic events")
    assert [e["id"] for e in receiver.events()] == [e["id"] for e in logged]
    assert [e["type"] for e in logged][:3] == [
        "io.scoregate.endpoint.created", "Microsoft.MachineLearningServices.ModelDeployed",
        "Microsoft.MachineLearningServices.ModelDeployed"]
    assert receiver.attempts == len(logged) + 3
    assert all(verify(created["secret"], d.body, d.headers[SIGNATURE_HEADER])
               for d in receiver.accepted)
    assert set(traffic_only.types()) == {"io.scoregate.traffic.changed"}
    only = admin.events(type="io.scoregate.traffic.changed")
    assert [e["id"] for e in only] == [e["id"] for e in traffic_only.events()]


def test_kill_9_between_commit_and_delivery_still_delivers(
        processes: ProcessGroup, tmp_path: Path) -> None:
    home = tmp_path / "home"
    gateway = start_serve(processes, home, extra=FAST)
    admin = Admin(gateway)
    with running_receiver(hang=True) as receiver:
        admin.subscribe(receiver, "survives-kill")
        admin.call("POST", "/v1/endpoints", {"name": E}, ok=201)  # committed, with its event
        wait_until(lambda: receiver.attempts == 1, what="the delivery to be under way")
        gateway.started.proc.send_signal(signal.SIGKILL)
        gateway.started.proc.wait(30)
        assert receiver.accepted == []  # the one delivery in flight never completed
        receiver.release()
        restarted = start_serve(processes, home, extra=FAST)
        [event] = Admin(restarted).events()
        wait_until(lambda: len(receiver.accepted) == 1, timeout=60,
                   what="the delivery after the restart")
    assert receiver.events()[0]["id"] == event["id"]
    assert event["type"] == "io.scoregate.endpoint.created"


def test_a_receiver_that_never_answers_does_not_slow_the_admin_api(
        processes: ProcessGroup, tmp_path: Path) -> None:
    gateway = start_serve(processes, tmp_path / "home", extra=FAST)
    admin = Admin(gateway)
    make_endpoint(admin, start_upstream(processes, tmp_path))
    flips = itertools.count()  # every call changes the traffic, so each raises an event

    def timed(calls: int) -> list[float]:
        took = []
        for _ in range(calls):
            start = time.perf_counter()
            flip_traffic(admin, next(flips))
            took.append(time.perf_counter() - start)
        return took

    timed(5)  # warm up
    without = timed(30)
    with running_receiver(hang=True) as dead:
        admin.subscribe(dead, "never-answers")
        flip_traffic(admin, next(flips))
        wait_until(lambda: dead.attempts == 1, what="the dead receiver's first delivery")
        with_dead = timed(30)
        # Every call above completed while the dead receiver's first delivery is pending.
        assert dead.attempts == 1 and dead.accepted == []
    ratio = statistics.median(with_dead) / statistics.median(without)
    print(f"\nadmin PUT traffic median: {statistics.median(without) * 1000:.1f} ms without, "
          f"{statistics.median(with_dead) * 1000:.1f} ms with a receiver that never answers "
          f"(ratio {ratio:.2f})")


def test_the_cli_subscribes_lists_dead_letters_and_replays(
        processes: ProcessGroup, tmp_path: Path) -> None:
    gateway = start_serve(processes, tmp_path / "home", extra=FAST)
    admin = Admin(gateway)
    with running_receiver(fail_first=2) as receiver:
        created = gateway.cli_json(
            "event-subscription", "create", "--name", "gives-up", "--endpoint", receiver.url,
            "--event-types", "io.scoregate.endpoint.created", "io.scoregate.endpoint.deleted",
            "--subject-begins-with", "endpoints/", "--subject-ends-with", E,
            "--max-attempts", "2", "--schema", "eventgrid", "--secret", "s" * 20)
        assert created["secret"] == "s" * 20 and created["max_attempts"] == 2
        assert created["event_types"] == ["io.scoregate.endpoint.created",
                                          "io.scoregate.endpoint.deleted"]
        listed = gateway.cli_json("event-subscription", "list")
        assert [s["name"] for s in listed] == ["gives-up"] and "secret" not in listed[0]
        admin.call("POST", "/v1/endpoints", {"name": E}, ok=201)
        admin.call("POST", "/v1/endpoints", {"name": "other-endpoint"}, ok=201)  # filtered out
        admin.call("DELETE", f"/v1/endpoints/{E}")
        wait_until(lambda: len(receiver.accepted) == 1, what="the second event")
        letters = gateway.cli_json("event-subscription", "dead-letters", "list", "-n",
                                   "gives-up")
        assert [(d["type"], d["attempts"], d["error"]) for d in letters] == [
            ("io.scoregate.endpoint.created", 2, "HTTP 503")]
        assert gateway.cli_json("event-subscription", "dead-letters", "replay", "-n",
                                "gives-up", "--id", str(letters[0]["id"])) == {"replayed": 1}
        wait_until(lambda: len(receiver.accepted) == 2, what="the replayed event")
        wait_until(lambda: gateway.cli_json("event-subscription", "dead-letters", "list", "-n",
                                            "gives-up") == [], what="the dead letter to go")
    batches = receiver.events()
    assert [b[0]["eventType"] for b in batches] == [
        "io.scoregate.endpoint.deleted", "io.scoregate.endpoint.created"]
    assert all(verify("s" * 20, d.body, d.headers[SIGNATURE_HEADER]) for d in receiver.accepted)
    logged = gateway.cli_json("event", "list", "--type", "io.scoregate.endpoint.created",
                              "--since", "1h")
    assert [e["subject"] for e in logged] == [f"endpoints/{E}", "endpoints/other-endpoint"]
    assert gateway.cli_json("event", "list", "--since", "2999-01-01T00:00:00Z") == []
    gateway.cli("event-subscription", "delete", "-n", "gives-up", "-y")
    missing = gateway.cli("event-subscription", "show", "-n", "gives-up", check=False)
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_model_create_from_the_cli_reaches_a_model_registered_subscriber(
        processes: ProcessGroup, tmp_path: Path) -> None:
    """The issue's recipe: a CI job's `scoregate model create` is what starts the chain."""
    gateway = start_serve(processes, tmp_path / "home", extra=FAST)
    model = tmp_path / "model.pkl"
    model.write_bytes(b"weights")
    with running_receiver() as receiver:
        gateway.cli("event-subscription", "create", "--name", "on-heart", "--endpoint",
                    receiver.url, "--event-types",
                    "Microsoft.MachineLearningServices.ModelRegistered",
                    "--subject-begins-with", "models/heart-classifier:")
        gateway.cli("model", "create", "--name", "lung-classifier", "--path", str(model))
        for _ in range(2):
            gateway.cli("model", "create", "--name", "heart-classifier", "--path", str(model),
                        "--tags", "area=cardio")
        wait_until(lambda: len(receiver.accepted) == 2, what="two ModelRegistered events")
    first, second = receiver.events()
    assert (first["subject"], second["subject"]) == ("models/heart-classifier:1",
                                                     "models/heart-classifier:2")
    assert second["data"] == {"modelName": "heart-classifier", "modelVersion": "2",
                              "modelTags": {"area": "cardio"}, "modelProperties": {}}


def test_wrong_subscriptions_and_queries_are_400_never_500(
        processes: ProcessGroup, tmp_path: Path) -> None:
    admin = Admin(start_serve(processes, tmp_path / "home"))
    for body in ({"name": "bad-endpoint", "endpoint": "ftp://x"}, {"name": "no-endpoint"},
                 {"name": "wrong-field", "endpoint": "http://x", "color": "red"},
                 {"name": "x", "endpoint": "http://x"}, ["a list"]):
        admin.call("POST", "/v1/event-subscriptions", body, ok=400)
    for query in ({"since": "yesterday"}, {"limit": "0"}, {"limit": "many"}):
        response = admin.client.get("/v1/events", params=query)
        assert response.status_code == 400 and "message" in response.json()
    admin.call("POST", "/v1/event-subscriptions/nothing-here/dead-letters/replay", ok=404)
