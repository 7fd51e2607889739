"""What both shared stores' links compute the same way from what they read: the bus's
counters as one :class:`EmitterStats`, and whether a daemon of this host still runs."""

from __future__ import annotations

import os

from ...bus.delivery import EmitterStats, ListenerStats

__all__ = ("bus_stats", "pid_alive")

_SUMMED = ("pending", "running", "retrying", "succeeded", "failed", "scheduled")


def bus_stats(listeners: dict[str, ListenerStats], *, unsent: int, unrouted: int,
              failed_list: int, next_due: float | None, duplicates: int) -> EmitterStats:
    """The bus's counters: each listener's, their sums, and what this daemon has not sent
    yet counted as pending."""
    total = ListenerStats()
    for one in listeners.values():
        for field in _SUMMED:
            setattr(total, field, getattr(total, field) + getattr(one, field))
    return EmitterStats(
        pending=total.pending + unsent, running=total.running, retrying=total.retrying,
        succeeded=total.succeeded, failed=total.failed, unrouted=unrouted,
        listeners=listeners, failed_list=failed_list, scheduled=total.scheduled,
        next_due=next_due, duplicates=duplicates)


def pid_alive(pid: int) -> bool:
    """Whether a process of this pid runs on this host (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
