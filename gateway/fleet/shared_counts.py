"""In-flight counts shared by every data-plane worker, in one shared memory mapping.

The mapping holds one row of `SLOTS` signed 64-bit counters per worker. Worker `w` is the
only writer of row `w` (from its event loop thread, between awaits), so an increment needs
no lock and no atomic instruction; a reader sums one column over all rows. Each sum is exact
for every row at the moment it is read (an aligned 8-byte store is never torn), so the only
error is a request that starts or ends in another worker while the sum is being taken: at
most one per other worker, the same as two requests racing in one process.

Which column a key uses (an instance id, or a deployment's live requests) is decided by the
control plane, which sends the slot table with every snapshot; a key keeps its slot for the
life of the server, so requests that started under an older snapshot end on the same column.
A key beyond `SLOTS` gets none and falls back to the worker's own counts (logged once by the
control plane).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator, Mapping

from gateway.admission import Admission, Key, max_in_flight, too_many
from gateway.snapshot import DeploymentRoute

SLOTS = 16384
_WORD = 8


def create_counts_fd(workers: int) -> int:
    """An anonymous shared mapping (memfd) sized for `workers` rows; its descriptor."""
    fd = os.memfd_create("scoregate-in-flight", 0)
    os.ftruncate(fd, workers * SLOTS * _WORD)
    return fd


class SharedCounts:
    """The rows of every worker, mapped from the memfd `fd`."""

    __slots__ = ("_map", "view", "workers")

    def __init__(self, fd: int, workers: int) -> None:
        self.workers = workers
        self._map = mmap.mmap(fd, workers * SLOTS * _WORD)
        self.view = memoryview(self._map).cast("q")  # row r, slot s at r * SLOTS + s

    def add(self, row: int, slot: int, delta: int) -> None:
        self.view[row * SLOTS + slot] += delta

    def total(self, slot: int) -> int:
        return sum(self.view[slot::SLOTS])  # one column: a strided view, summed in C

    def clear_row(self, row: int) -> None:
        """A dead worker's requests died with it: its row starts again at zero."""
        start = row * SLOTS * _WORD
        self._map[start:start + SLOTS * _WORD] = bytes(SLOTS * _WORD)

    def close(self) -> None:
        self.view.release()
        self._map.close()


_LIVE = "live "
_DEMAND = "demand "


def deployment_slot_key(endpoint: str, deployment: str) -> str:
    """The slot table's key for the live requests of one deployment (instance ids never
    contain a space, names never a slash)."""
    return f"{_LIVE}{endpoint}/{deployment}"


def demand_slot_key(endpoint: str, deployment: str) -> str:
    """The slot table's key for a deployment's demand: live, direct and mirror requests in
    flight plus those waiting for its first instance (what the autoscaler samples)."""
    return f"{_DEMAND}{endpoint}/{deployment}"


class _FleetInstances(Mapping[str, int]):
    """Requests in flight per instance across the fleet, for the picker (`get` is all it
    calls); keys without a slot count this worker's requests only."""

    __slots__ = ("_view", "_slots", "_local")

    def __init__(self, counts: SharedCounts, slots: dict[str, int],
                 local: Mapping[str, int]) -> None:
        self._view, self._slots, self._local = counts.view, slots, local

    def get(self, key: str, default: int = 0) -> int:  # type: ignore[override]
        slot = self._slots.get(key)
        if slot is None:
            return self._local.get(key, default)
        return sum(self._view[slot::SLOTS])

    def __getitem__(self, key: str) -> int:
        return self.get(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._slots)

    def __len__(self) -> int:
        return len(self._slots)


class SharedAdmission(Admission):
    """`Admission` for one worker of a fleet: it counts in its own dicts (its gauge, which the
    fleet's /metrics sums) and in its row of the shared counts, and decides the picker's
    choice and the 429 rule from the fleet-wide sums."""

    __slots__ = ("_view", "_base", "_slots", "_deployment_slots", "_demand_slots",
                 "_fleet_instances")

    def __init__(self, shared: SharedCounts, row: int) -> None:
        super().__init__()
        self._view = shared.view
        self._base = row * SLOTS  # this worker's row: the only one it writes
        self._slots: dict[str, int] = {}  # instance id → slot
        self._deployment_slots: dict[Key, int] = {}  # (endpoint, deployment) → slot
        self._demand_slots: dict[Key, int] = {}  # (endpoint, deployment) → demand slot
        self._fleet_instances = _FleetInstances(shared, self._slots, self._instances)

    def set_slots(self, slots: Mapping[str, int]) -> None:
        """The control plane's slot table (it only grows; a key never moves)."""
        for key, slot in slots.items():
            if key.startswith(_LIVE):
                endpoint, deployment = key[len(_LIVE):].split("/", 1)
                self._deployment_slots[(endpoint, deployment)] = slot
            elif key.startswith(_DEMAND):
                endpoint, deployment = key[len(_DEMAND):].split("/", 1)
                self._demand_slots[(endpoint, deployment)] = slot
            else:
                self._slots[key] = slot

    @property
    def instances(self) -> Mapping[str, int]:
        return self._fleet_instances

    def instance(self, instance_id: str) -> int:
        return self._fleet_instances.get(instance_id)

    def start_instance(self, instance_id: str) -> None:
        super().start_instance(instance_id)
        slot = self._slots.get(instance_id)
        if slot is not None:
            self._view[self._base + slot] += 1

    def end_instance(self, instance_id: str) -> None:
        super().end_instance(instance_id)
        slot = self._slots.get(instance_id)
        if slot is not None:
            self._view[self._base + slot] -= 1

    def admit(self, deployment: DeploymentRoute, key: Key) -> None:
        slot = self._deployment_slots.get(key)
        if slot is None:
            super().admit(deployment, key)
        else:
            limit = max_in_flight(deployment)
            if sum(self._view[slot::SLOTS]) >= limit:
                raise too_many(deployment, limit)
            self._live[key] = self._live.get(key, 0) + 1
            self._view[self._base + slot] += 1
        self._add_demand(key, 1)

    def release(self, key: Key) -> None:
        super().release(key)
        slot = self._deployment_slots.get(key)
        if slot is not None:
            self._view[self._base + slot] -= 1
        self._add_demand(key, -1)

    def start_mirror(self, key: Key) -> None:
        super().start_mirror(key)
        self._add_demand(key, 1)

    def end_mirror(self, key: Key) -> None:
        super().end_mirror(key)
        self._add_demand(key, -1)

    def start_waiting(self, key: Key) -> None:
        super().start_waiting(key)
        self._add_demand(key, 1)

    def end_waiting(self, key: Key) -> None:
        super().end_waiting(key)
        self._add_demand(key, -1)

    def _add_demand(self, key: Key, delta: int) -> None:
        slot = self._demand_slots.get(key)
        if slot is not None:
            self._view[self._base + slot] += delta
