"""Admin API routes of events: the event log, subscriptions and their dead letters.

`event_handlers(store, events)` gives the handlers keyed like `openapi.PATHS`; `app.py` adds
them to its routes. The log is the store's outbox; `events()` gives the subscriptions, or
None while the server has not started delivery yet (503).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio.to_thread
import orjson
from starlette.requests import Request
from starlette.responses import Response

from control_plane.admin.events_doc import (
    DEAD_LETTERS,
    EVENTS,
    REPLAY,
    SUBSCRIPTION,
    SUBSCRIPTIONS,
)
from control_plane.admin.openapi import json_body
from control_plane.errors import ScoregateError
from control_plane.events import (
    EventSubscriptions,
    Subscription,
    parse_age,
    subscription_view,
)
from control_plane.store.sqlite_store import Store

Handler = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")
MAX_EVENTS = 10_000


class EventsUnavailable(ScoregateError):
    status = 503


def event_handlers(store: Callable[[], Store], events: Callable[[], EventSubscriptions | None]
                   ) -> dict[str, dict[str, Handler]]:
    def service() -> EventSubscriptions:
        found = events()
        if found is None:
            raise EventsUnavailable("event subscriptions are not running on this server yet")
        return found

    async def list_events(request: Request) -> Response:
        query = request.query_params
        since = parse_since(query.get("since"), time.time())
        types = tuple(t.strip() for value in query.getlist("type") for t in value.split(",")
                      if t.strip())
        limit = _limit(query.get("limit"))
        logged = await _thread(store().events, since, types, limit)
        return _json([event.to_dict() for event in logged])

    async def list_subscriptions(request: Request) -> Response:
        return _json([subscription_view(s) for s in await _thread(service().every)])

    async def create_subscription(request: Request) -> Response:
        body = await json_body(request, "SubscriptionCreate", required=True)
        secret = body.pop("secret", None)
        body["event_types"] = tuple(body.get("event_types") or ())
        stored = await _thread(service().create, Subscription(**body), secret)
        return _json(subscription_view(stored, secret=True), 201)

    async def show_subscription(request: Request) -> Response:
        stored = await _thread(service().show, request.path_params["subscription"])
        return _json(subscription_view(stored))

    async def delete_subscription(request: Request) -> Response:
        name = request.path_params["subscription"]
        await _thread(service().delete, name)
        return _json({"message": f"deleted event subscription {name} and its dead letters"})

    async def dead_letters(request: Request) -> Response:
        letters = await _thread(service().dead_letters, request.path_params["subscription"])
        return _json([letter.to_dict() for letter in letters])

    async def replay(request: Request) -> Response:
        body = await json_body(request, "Replay", required=False)
        ids = tuple(body.get("ids") or ())
        count = await _thread(service().replay, request.path_params["subscription"], ids)
        return _json({"replayed": count})

    return {
        EVENTS: {"get": list_events},
        SUBSCRIPTIONS: {"get": list_subscriptions, "post": create_subscription},
        SUBSCRIPTION: {"get": show_subscription, "delete": delete_subscription},
        DEAD_LETTERS: {"get": dead_letters},
        REPLAY: {"post": replay},
    }


def parse_since(value: str | None, now: float) -> float | None:
    """An RFC 3339 time (a naive one is UTC) or an age (`90s`, `30m`, `2h`, `7d`) → epoch s."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text[-1:] in ("s", "m", "h", "d") and text[:-1].replace(".", "", 1).isdigit():
        return now - parse_age(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ScoregateError(f"since must be a time like 2026-11-27T17:00:00Z or an age like "
                             f"30m, 2h, 7d; got {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _limit(value: str | None) -> int:
    if value is None:
        return 1000
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_EVENTS:
        raise ScoregateError(f"limit must be a whole number from 1 to {MAX_EVENTS}, "
                             f"got {value!r}")
    return int(value)



async def _thread(call: Callable[..., T], *args: Any) -> T:
    return await anyio.to_thread.run_sync(functools.partial(call, *args))


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status, media_type="application/json")
