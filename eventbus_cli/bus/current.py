"""``current_delivery()``: which delivery the running listener call is for.

Delivery is at least once wherever a daemon can die between a listener's return and the
record of it (the journal, Redis): a listener with side effects that must not happen twice
keys them on its delivery's ``id`` (unique bus-wide) and reads ``attempts`` to tell a retry.
"""

from __future__ import annotations

from contextvars import ContextVar

from .delivery import Delivery

__all__ = ("current_delivery",)

CURRENT: ContextVar[Delivery | None] = ContextVar("eventbus_current_delivery", default=None)
"""Set by the worker before each call; sync listeners see it too (their thread runs in a
copy of the worker's context)."""


def current_delivery() -> Delivery | None:
    """The delivery the listener now running was called for: its ``id``, ``event``,
    ``listener``, ``attempts`` (1 on the first attempt) and ``args``/``kwargs``; None outside
    a listener call. Treat it as read-only."""
    return CURRENT.get()
