"""``DedupeKeys``: the keys of emits accepted lately, with the answer each got.

A key is kept for ``window`` seconds after its emit was accepted; a repeat within that time
is answered as the first was and queues nothing. At most ``max_keys`` are kept: past that,
the oldest are forgotten first (a repeat of a forgotten key is a new emit), so the memory
they take is bounded by count, whatever clients send.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

__all__ = ("DedupeKeys",)


class DedupeKeys:
    """Keys of accepted emits, oldest first, each with its expiry and its answer."""

    def __init__(self, window: float, max_keys: int) -> None:
        self.window = window
        self.max_keys = max_keys
        self._keys: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def answer_for(self, key: str, now: float | None = None) -> dict[str, Any] | None:
        """The answer the first emit of ``key`` got, if it was accepted within the window."""
        kept = self._keys.get(key)
        if kept is None:
            return None
        if kept[0] <= (time.time() if now is None else now):
            del self._keys[key]
            return None
        return kept[1]

    def remember(self, key: str, answer: dict[str, Any], expires: float | None = None,
                 ) -> float:
        """Keep ``key`` with ``answer`` until ``expires`` (default: the window from now);
        return the expiry. The oldest keys go when there are more than ``max_keys``."""
        expiry = time.time() + self.window if expires is None else expires
        self._keys[key] = (expiry, answer)
        self._keys.move_to_end(key)
        self.prune()
        return expiry

    def prune(self) -> list[str]:
        """Forget expired keys at the old end, and any beyond ``max_keys``; return them."""
        gone = []
        now = time.time()
        keys = self._keys
        while keys and (len(keys) > self.max_keys or next(iter(keys.values()))[0] <= now):
            gone.append(keys.popitem(last=False)[0])
        return gone
