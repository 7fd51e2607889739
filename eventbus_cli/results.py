"""What the daemon answers to each op, as typed documents (the same ones ``--json`` prints).

They are ``TypedDict`` s: plain dicts at run time, so a result is as cheap as the JSON it came
from, and checked by mypy where it is used.
"""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = (
    "DeliveryInfo",
    "DeliveryOutcome",
    "DryRunListener",
    "EmitResult",
    "EventInfo",
    "Hello",
    "ListenerCounts",
    "ListenerInfo",
    "QueueCounts",
    "ReloadResult",
    "ScheduleInfo",
)


class DeliveryOutcome(TypedDict):
    """How one delivery of a waited-for emit ended (``ok`` None: not finished in time)."""

    listener: str
    delivery: int
    ok: bool | None
    error: str | None


class DryRunListener(TypedDict):
    """A listener a dry-run emit would reach, and whether it takes the arguments."""

    listener: str
    signature: str | None
    takes: bool
    check: str
    problem: str | None


class EmitResult(TypedDict, total=False):
    """The answer to one emit: ``event_id`` and ``deliveries`` queued (0: unrouted), with
    ``duplicate`` for a repeated dedupe key, ``results`` after a wait, ``listeners`` for a
    dry run."""

    event_id: str
    deliveries: int
    due: str
    duplicate: bool
    results: list[DeliveryOutcome]
    listeners: list[DryRunListener]


class Hello(TypedDict):
    """Who answers on the socket."""

    protocol: int
    version: str
    pid: int
    max_message_bytes: int


class ListenerInfo(TypedDict):
    """One listener the daemon runs, with the options it runs with."""

    name: str
    module: str
    file: str | None
    events: list[str]
    retries: int
    backoff: float
    timeout: float | None
    check: str
    signature: str | None


class ListenerCounts(TypedDict):
    """The deliveries of one listener, by state, and what happened to them so far."""

    pending: int
    running: int
    retrying: int
    scheduled: int
    succeeded: int
    failed: int
    retried: int


class QueueCounts(TypedDict, total=False):
    """The counters of ``queue``: deliveries by state, outcomes, and the bounds."""

    pending: int
    running: int
    retrying: int
    scheduled: int
    succeeded: int
    failed: int
    unrouted: int
    duplicates: int
    failed_list: int
    next_due: str | None
    queued_bytes: int
    queue_size: int
    max_queue_bytes: int
    max_scheduled: int
    listeners: dict[str, ListenerCounts]


class DeliveryInfo(TypedDict, total=False):
    """One delivery held by the daemon (``traceback`` only from ``delivery(id)``)."""

    id: int
    event: str
    listener: str
    state: str
    attempts: int
    error: str | None
    created: str
    last_attempt: str | None
    failed: str | None
    due: str | None
    args: list[Any]
    kwargs: dict[str, Any]
    traceback: str | None


class ReloadResult(TypedDict):
    """What a reload changed, by listener name."""

    listeners: int
    added: list[str]
    removed: list[str]
    kept: list[str]
    failed: int
    schedules: int


class ScheduleInfo(TypedDict, total=False):
    """One schedule, as ``schedule list`` shows it."""

    name: str
    spec: str | None
    every: float | None
    text: str
    tz: str
    event: str
    args: list[Any]
    kwargs: dict[str, Any]
    catch_up: str
    next: str | None
    last: str | None
    outcome: str | None


class EventInfo(TypedDict):
    """One event id (or pattern) of the catalog, with the listeners that take it."""

    event: str
    pattern: bool
    listeners: list[dict[str, Any]]
