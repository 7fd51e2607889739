"""What the contract suite's listeners did, shared with the test in the same process.

The listeners (see ``conftest.LISTENERS``) run in the test's own event loop, inside an
in-process daemon, so they report here and the test waits on :func:`wait_runs`, an event,
never on a sleep.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import anyio

from eventbus_cli import current_delivery


@dataclass(frozen=True)
class Run:
    """One attempt a listener made."""

    listener: str
    delivery: int
    attempt: int
    at: float  # time.time() when it started
    kwargs: dict[str, object]


runs: list[Run] = []
ends: list[Run] = []
"""Attempts that ended, for listeners that say so (:func:`ended`)."""
fixed = False
"""Whether the ``broken`` listener succeeds now (a fix deployed, for a retry)."""
_changed: anyio.Event | None = None
_gate: anyio.Event | None = None


def reset() -> None:
    global fixed, _changed, _gate
    runs.clear()
    ends.clear()
    fixed = False
    _changed = _gate = None


def ran(listener: str, **kwargs: object) -> None:
    global _changed
    delivery = current_delivery()
    assert delivery is not None, "probe.ran() is for listeners"
    runs.append(Run(listener, delivery.id, delivery.attempts, time.time(), kwargs))
    if _changed is not None:
        _changed.set()
        _changed = None


def ended(listener: str, **kwargs: object) -> None:
    delivery = current_delivery()
    assert delivery is not None, "probe.ended() is for listeners"
    ends.append(Run(listener, delivery.id, delivery.attempts, time.time(), kwargs))


def of(listener: str) -> list[Run]:
    return [run for run in runs if run.listener == listener]


async def wait_runs(count: int, listener: str | None = None, *, seconds: float = 10.0) -> None:
    """Return once ``count`` attempts (of ``listener``, or of any) have started."""
    global _changed
    with anyio.fail_after(seconds):
        while len(of(listener) if listener else runs) < count:
            if _changed is None:
                _changed = anyio.Event()
            await _changed.wait()


async def gate() -> None:
    """Wait until the test calls :func:`open_gate`."""
    global _gate
    if _gate is None:
        _gate = anyio.Event()
    await _gate.wait()


def open_gate() -> None:
    global _gate
    if _gate is None:
        _gate = anyio.Event()
    _gate.set()
