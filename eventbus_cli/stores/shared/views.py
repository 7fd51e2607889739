"""``Publisher``: this daemon's changes as records for the other daemons' live views
(``tail``, ``emit --wait``), whatever carries them (Redis Pub/Sub, PostgreSQL NOTIFY).

While a daemon elsewhere listens, the publisher observes the broker and keeps a record of
each change; the link's next round sends them. Each store's views subclass it with how they
hear the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from ...bus.delivery import Delivery, DeliveryObserver
from .codec import decode_record, encode_record

__all__ = ("Publisher", "Served")

logger = logging.getLogger("eventbus.backend")


class Served(Protocol):
    """What the views need of the broker they serve (a SharedBroker)."""

    def wants_records(self) -> bool: ...
    def routes_changed(self, routes: dict[str, tuple[str, ...]]) -> None: ...
    def on_record(self, change: str, event: str | None,
                  deliveries: list[Delivery]) -> None: ...
    def add_observer(self, observer: DeliveryObserver) -> None: ...
    def remove_observer(self, observer: DeliveryObserver) -> None: ...


class Publisher:
    """Keeps this daemon's changes as records while :attr:`publishing`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.records: list[bytes] = []
        """Records not sent yet: the link's next round sends them."""
        self.publishing = False
        """Whether a daemon elsewhere listens, so this one publishes every change."""
        self._wake: Callable[[], None] | None = None

    def relay(self, broker: Served, data: bytes) -> None:
        """Hand ``broker`` the record ``data`` from another daemon; one that cannot be read
        (anything else that can write to the channel) is logged and dropped."""
        try:
            daemon, change, event, deliveries = decode_record(data)
        except Exception as exc:  # foreign input: it never ends the daemon
            logger.warning("dropped a record on the bus's channel that is not eventbus's "
                           "(%s): %r", exc, data[:200])
            return
        if daemon != self.name:
            broker.on_record(change, event, deliveries)

    def set_publishing(self, broker: Served, on: bool) -> None:
        """Observe the broker (keep records) while a daemon elsewhere listens."""
        if on and not self.publishing:
            broker.add_observer(self)
        elif not on and self.publishing:
            broker.remove_observer(self)
        self.publishing = on

    def _publish(self, change: str, event: str | None, deliveries: Sequence[Delivery]) -> None:
        self.records.append(encode_record(self.name, change, event, deliveries))
        if self._wake is not None:
            self._wake()

    # DeliveryObserver: this daemon's changes, for the other daemons' views.
    def emitted(self, event_id: str, deliveries: Sequence[Delivery]) -> None:
        self._publish("emitted", event_id, deliveries)

    def requeued(self, deliveries: Sequence[Delivery]) -> None:
        self._publish("requeued", None, deliveries)

    def due(self, delivery: Delivery) -> None:
        self._publish("due", None, [delivery])

    def started(self, delivery: Delivery) -> None:
        self._publish("started", None, [delivery])

    def finished(self, delivery: Delivery) -> None:
        self._publish("finished", None, [delivery])

    def removed(self, deliveries: Sequence[Delivery]) -> None:
        self._publish("removed", None, deliveries)
