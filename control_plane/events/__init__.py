"""Events: subscriptions to the store's outbox and their at-least-once delivery.

A feature package: its tables come as a `StoreExtension` (`rows.py`); the event log itself is
the store's outbox (`store/outbox.py`), which every writer fills inside its own transaction.
`Dispatcher` (`dispatcher.py`) delivers, `EventSubscriptions` (`service.py`) is what the admin
API uses, `formats.py` renders CloudEvents or Event Grid JSON. See docs/events.md.
"""

from control_plane.events.dispatcher import DeliveryPolicy, Dispatcher, Retention, parse_age
from control_plane.events.formats import SIGNATURE_HEADER, sign, verify
from control_plane.events.rows import STORE_EXTENSION
from control_plane.events.service import EventSubscriptions, subscription_view
from control_plane.events.subscription import Subscription

__all__ = ["SIGNATURE_HEADER", "STORE_EXTENSION", "DeliveryPolicy", "Dispatcher",
           "EventSubscriptions", "Retention", "Subscription", "parse_age", "sign",
           "subscription_view", "verify"]
