"""``Unrouted``: emits no listener takes, made loud: the first of each event id is logged at
WARNING with the known ids it is close to (a typo like ``user_creatd``), and the emit's
answer carries the closest, so the CLI can say "did you mean". Bounded: at most
:data:`LOGGED_PER_MINUTE` ids are logged a minute, and :data:`REMEMBERED` are remembered.
"""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Callable, Iterable

from ..names import is_pattern

__all__ = ("LOGGED_PER_MINUTE", "REMEMBERED", "Unrouted")

logger = logging.getLogger("eventbus.daemon")

LOGGED_PER_MINUTE = 10
"""Distinct unrouted event ids logged a minute, at most; the rest are counted in metrics."""
REMEMBERED = 10_000
"""Unrouted event ids remembered (with their suggestion); past it, the memory starts over."""


class Unrouted:
    """Remembers unrouted event ids; ``known`` gives the ids the listeners name now."""

    def __init__(self, known: Callable[[], Iterable[str]]) -> None:
        self._known = known
        self._seen: dict[str, str | None] = {}  # event id -> the closest known id, if any
        self._minute = 0.0
        self._logged = 0

    def seen(self, event_id: str, *, refused: bool = False) -> str | None:
        """An emit of ``event_id`` reached no listener (``refused``: and was refused for
        it): the closest known id, if one is close. The first emit of each id is logged."""
        if event_id in self._seen:
            return self._seen[event_id]
        if len(self._seen) >= REMEMBERED:
            self._seen.clear()
        exact = sorted({name for name in self._known() if not is_pattern(name)})
        close = difflib.get_close_matches(event_id, exact, n=3, cutoff=0.75)
        self._seen[event_id] = close[0] if close else None
        now = time.monotonic()
        if now - self._minute >= 60:
            self._minute, self._logged = now, 0
        if self._logged < LOGGED_PER_MINUTE:
            self._logged += 1
            hint = (f"; did you mean {' or '.join(map(repr, close))}?" if close
                    else " (`eventbus events` lists the ids the listeners take)")
            outcome = ("refused (require_listener)" if refused
                       else "accepted and counted as unrouted, and it runs nothing")
            logger.warning("event %r matches no listener: %s%s", event_id, outcome, hint)
        return self._seen[event_id]

    def forget(self) -> None:
        """The listeners changed (a reload): ids are judged afresh."""
        self._seen.clear()
