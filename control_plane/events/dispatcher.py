"""Delivery: one asyncio task per subscription walks the outbox from its cursor, in order.

At-least-once and in order per subscription: an event is POSTed until the receiver answers
2xx, with exponential backoff between attempts, up to the subscription's `max_attempts`; then
it becomes a dead letter and the next event goes. The cursor moves after each event in its own
transaction, so a crash (even kill -9) between a delivery and that commit sends the event
again after the restart, and a commit that happened is always delivered.

Isolation: each subscription has its own task and HTTP client with timeouts, so a slow or
dead receiver only delays its own subscription; the control plane never waits for a
delivery (writers only insert into the outbox). New events wake the tasks through the
store's commit hook, with a slow poll as a fallback.

Retention: events older than `max_age_s` or beyond the newest `max_count` are pruned, except
those a subscription has not handled yet (each is handled within its bounded retry schedule).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
import httpx
import structlog

from control_plane.errors import ValidationError
from control_plane.events import rows
from control_plane.events.formats import SIGNATURE_HEADER, render, sign
from control_plane.events.subscription import Subscription
from control_plane.store import outbox
from control_plane.store.sqlite_store import Store
from control_plane.tasks import cancel_and_wait

T = TypeVar("T")
BATCH = 100
NO_RETRY_STATUSES = frozenset({400, 403, 413})  # as Event Grid: the receiver refuses it
_log = structlog.get_logger("scoregate.events")


_AGE = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)?$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text: str) -> float:
    """`90s`, `30m`, `2h`, `7d` or plain seconds → seconds."""
    found = _AGE.match(text.strip())
    if found is None:
        raise ValidationError("age", f"expected an age like 90s, 30m, 2h or 7d, got {text!r}")
    return float(found.group(1)) * _UNIT_S[found.group(2) or "s"]


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout_s: float = 10.0  # one attempt, connect to last byte
    first_retry_s: float = 1.0  # then doubling
    max_retry_s: float = 60.0
    poll_s: float = 5.0  # fallback when no commit hook fired

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (1-based)."""
        return float(min(self.first_retry_s * 2 ** (attempt - 1), self.max_retry_s))


@dataclass(frozen=True)
class Retention:
    max_age_s: float = 7 * 24 * 3600.0
    max_count: int = 100_000
    dead_letters: int = 10_000  # per subscription
    every_s: float = 60.0


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    attempts: int
    error: str


class Dispatcher:
    def __init__(self, store: Store, policy: DeliveryPolicy = DeliveryPolicy(),
                 retention: Retention = Retention()) -> None:
        self.store = store
        self.policy = policy
        self.retention = retention
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wakes: dict[str, asyncio.Event] = {}
        self._changed = asyncio.Event()
        self._manager: asyncio.Task[None] | None = None
        self._pruner: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.store.on_commit(self._committed)
        await self._prune()
        self._manager = self._loop.create_task(self._manage())
        self._pruner = self._loop.create_task(self._prune_forever())

    def wake(self) -> None:
        """Something committed (maybe events, maybe dead letters to replay): look again."""
        for wake in self._wakes.values():
            wake.set()

    def subscriptions_changed(self) -> None:
        """A subscription was created or deleted (callable from any thread, even inside the
        creating transaction: the manager's read waits for the commit)."""
        self._call_soon(self._changed.set)

    async def close(self) -> None:
        self._closed = True
        tasks = [t for t in (self._manager, self._pruner, *self._tasks.values()) if t]
        await cancel_and_wait(*tasks)

    # --- tasks -------------------------------------------------------------------------------

    def _committed(self) -> None:
        self._call_soon(self.wake)

    def _call_soon(self, callback: Callable[[], None]) -> None:
        loop = self._loop
        if loop is not None and not self._closed:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(callback)

    async def _manage(self) -> None:
        """Keeps one task per stored subscription; looks again when told the subscriptions
        changed (not at every commit: that read would cost every writer a little)."""
        while True:
            self._changed.clear()
            names = set(await self._read(rows.every_name))
            for name in list(self._tasks):
                if name not in names or self._tasks[name].done():
                    task = self._tasks.pop(name)
                    self._wakes.pop(name, None)
                    if not task.done():
                        await cancel_and_wait(task)
            for name in sorted(names - self._tasks.keys()):
                self._wakes[name] = asyncio.Event()
                self._tasks[name] = asyncio.get_running_loop().create_task(self._deliver_all(name))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.policy.poll_s):
                    await self._changed.wait()

    async def _deliver_all(self, name: str) -> None:
        wake = self._wakes[name]
        timeout = httpx.Timeout(self.policy.timeout_s)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            while True:
                wake.clear()
                try:
                    if not await self._one_round(client, name):
                        self._changed.set()  # gone or ended: the manager drops this task
                        return
                    continue
                except _NothingNew:
                    pass
                except asyncio.CancelledError:
                    raise
                except Exception:  # a bug or a store error: say so, try again later
                    _log.exception("event delivery failed", subscription=name)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.policy.poll_s):
                        await wake.wait()

    async def _one_round(self, client: httpx.AsyncClient, name: str) -> bool:
        """Replays first, then the next batch of the outbox; False once the subscription is
        gone. Raises `_NothingNew` when there was nothing to do."""
        found = await self._read(_next_round, name)
        if found is None:
            return False
        stored, replays, events = found
        sub = stored.subscription
        for letter in replays:
            outcome = await self._send(client, stored, letter.event)
            await self._write(rows.replayed, letter.id, outcome.delivered, outcome.attempts,
                              outcome.error)
        if not events and not replays:
            raise _NothingNew
        for event in events:
            if not sub.matches(event):
                continue
            outcome = await self._send(client, stored, event)
            ended = event.type in sub.final_types
            await self._write(self._handled, name, event, outcome, ended)
            if ended:
                return False
        if events:
            await self._write(rows.advance, name, events[-1].seq)
        return True

    @staticmethod
    def _handled(conn: Any, name: str, event: outbox.Event, outcome: Outcome,
                 ended: bool) -> None:
        if not outcome.delivered:
            rows.dead_letter(conn, name, event, outcome.attempts, outcome.error)
        if ended:
            conn.execute("DELETE FROM event_subscriptions WHERE name = ?", (name,))
        else:
            rows.advance(conn, name, event.seq)

    async def _send(self, client: httpx.AsyncClient, stored: rows.Stored,
                    event: outbox.Event) -> Outcome:
        sub = stored.subscription
        body, content_type = render(event, sub.schema)
        headers = {"content-type": content_type, SIGNATURE_HEADER: sign(stored.secret, body),
                   "scoregate-subscription": sub.name}
        error = ""
        for attempt in range(1, sub.max_attempts + 1):
            headers["scoregate-delivery-attempt"] = str(attempt)
            error, retry = await self._post(client, sub, body, headers)
            if not error:
                return Outcome(True, attempt, "")
            _log.warning("event delivery attempt failed", subscription=sub.name,
                         type=event.type, seq=event.seq, attempt=attempt, error=error)
            if not retry or attempt == sub.max_attempts:
                return Outcome(False, attempt, error)
            await asyncio.sleep(self.policy.backoff(attempt))
        return Outcome(False, sub.max_attempts, error)

    async def _post(self, client: httpx.AsyncClient, sub: Subscription, body: bytes,
                    headers: dict[str, str]) -> tuple[str, bool]:
        """('', _) when delivered, else (what went wrong, whether to retry)."""
        try:
            async with asyncio.timeout(self.policy.timeout_s):
                response = await client.post(sub.endpoint, content=body, headers=headers)
        except (httpx.HTTPError, TimeoutError) as error:
            return f"{type(error).__name__}: {error}".rstrip(": "), True
        if response.is_success:
            return "", False
        return f"HTTP {response.status_code}", response.status_code not in NO_RETRY_STATUSES

    # --- retention ----------------------------------------------------------------------------

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(self.retention.every_s)
            try:
                await self._prune()
            except Exception:
                _log.exception("event log pruning failed")

    async def _prune(self) -> None:
        retention = self.retention

        def prune(conn: Any) -> tuple[int, int]:
            slowest = rows.slowest_cursor(conn)
            up_to = outbox.last_seq(conn) if slowest is None else slowest
            events = outbox.prune(conn, time.time() - retention.max_age_s,
                                  retention.max_count, up_to)
            return events, rows.prune_dead_letters(conn, retention.dead_letters)

        events, letters = await self._write(prune)
        if events or letters:
            _log.info("event log pruned", events=events, dead_letters=letters)

    # --- store calls in a thread ------------------------------------------------------------

    async def _read(self, read: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(
            functools.partial(self.store.feature_read, lambda conn: read(conn, *args)))

    async def _write(self, write: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(
            functools.partial(self.store.feature_write, lambda conn: write(conn, *args)))


class _NothingNew(Exception):
    pass


Round = tuple[rows.Stored, list[rows.DeadLetter], list[outbox.Event]]


def _next_round(conn: Any, name: str) -> Round | None:
    """One read transaction per round (each takes the store's lock once): the subscription,
    its queued replays and the next events after its cursor."""
    stored = rows.get(conn, name)
    if stored is None:
        return None
    replays = rows.dead_letters(conn, name, replay_only=True, limit=BATCH)
    return stored, replays, outbox.after(conn, stored.cursor, BATCH)
