"""What the daemon answers to each op: one msgspec Struct per result, the same documents
``--json`` prints. The daemon's handlers return them; the clients decode replies into them.

A field that is not always sent has a default and is left out of the wire when it holds it
(``omit_defaults``); every other field is always sent, ``null`` where it has no value.
"""

from __future__ import annotations

from typing import Any

from msgspec import Struct

__all__ = (
    "Acknowledged",
    "BackendStatus",
    "CatalogListener",
    "DeliveryDetail",
    "DeliveryInfo",
    "DeliveryOutcome",
    "DryRunListener",
    "EmitManyResult",
    "EmitResult",
    "EventInfo",
    "HealthReport",
    "Hello",
    "Idle",
    "JournalStatus",
    "ListenerCounts",
    "ListenerInfo",
    "PauseState",
    "Purged",
    "QueueCounts",
    "ReloadResult",
    "Retried",
    "ScheduleInfo",
    "SchedulesStatus",
    "Status",
    "Stopping",
    "Subscribed",
    "ThreadsStatus",
)


class Hello(Struct):
    """Who answers on the socket."""

    protocol: int
    version: str
    pid: int
    max_message_bytes: int


# -- emitting -------------------------------------------------------------------------------


class DeliveryOutcome(Struct):
    """How one delivery of a waited-for emit ended (``ok`` None: not finished in time)."""

    listener: str
    delivery: int
    ok: bool | None
    error: str | None


class DryRunListener(Struct):
    """A listener a dry-run emit would reach, and whether it takes the arguments."""

    listener: str
    signature: str | None
    takes: bool
    check: str
    problem: str | None


class EmitResult(Struct, omit_defaults=True):
    """The answer to one emit: ``deliveries`` queued (0: unrouted, or a dry run), with
    ``due`` for one emitted for later, ``duplicate`` for a repeated dedupe key (answered as
    the first was), ``results`` after a wait, ``listeners`` for a dry run, ``suggestion``
    for an unrouted one: the known event id closest to it (a typo?)."""

    event_id: str
    deliveries: int
    due: str | None = None
    volatile: bool = False
    """For later, on a daemon that keeps nothing on disk: a restart before ``due`` loses it."""
    duplicate: bool = False
    suggestion: str | None = None
    results: list[DeliveryOutcome] | None = None
    listeners: list[DryRunListener] | None = None


class EmitManyResult(Struct):
    """The answer to an ``emit_many``: how many of its events were accepted (all of them),
    the deliveries they queued, how many matched no listener and how many were duplicates."""

    accepted: int
    deliveries: int
    unrouted: int
    duplicates: int


class Idle(Struct):
    """The answer to ``join``: whether nothing was pending, running or retrying in time."""

    idle: bool


class Subscribed(Struct):
    """The first reply to ``subscribe``; records follow, one a line."""

    subscribed: bool = True


# -- reading --------------------------------------------------------------------------------


class ListenerInfo(Struct, rename={"is_async": "async"}):
    """One listener the daemon runs, with the options it runs with."""

    name: str
    module: str
    file: str | None
    events: list[str]
    retries: int
    backoff: float
    timeout: float | None
    is_async: bool
    """Whether it is a coroutine function (run on the loop) or a sync one (run in a thread)."""
    signature: str | None
    check: str


class ListenerCounts(Struct):
    """The deliveries of one listener, by state, and what happened to them so far."""

    pending: int
    running: int
    retrying: int
    succeeded: int
    failed: int
    retried: int
    scheduled: int
    paused: bool = False
    """Whether an operator paused it: its deliveries wait, nothing fails."""


class QueueCounts(Struct):
    """The counters of ``queue``: deliveries by state, outcomes, and the bounds."""

    pending: int
    running: int
    retrying: int
    succeeded: int
    failed: int
    unrouted: int
    listeners: dict[str, ListenerCounts]
    failed_list: int
    scheduled: int
    next_due: str | None
    duplicates: int
    queued_bytes: int
    queue_size: int
    max_queue_bytes: int | None
    max_scheduled: int
    paused: dict[str, str | None] = {}
    """The paused listeners of the bus, each with when it resumes (None: when told)."""


class DeliveryInfo(Struct):
    """One delivery the daemon holds, as ``queue list`` shows it."""

    id: int
    event: str
    listener: str
    state: str
    attempts: int
    error: str | None
    created: str | None
    last_attempt: str | None
    failed: str | None
    due: str | None
    args: list[Any]
    kwargs: dict[str, Any]
    priority: str = "normal"
    """``high``, ``normal`` or ``low``."""
    order_key: str | None = None
    """Its order key: the deliveries of one key run one at a time, in emit order."""


class DeliveryDetail(DeliveryInfo, kw_only=True):
    """One delivery with the traceback of its last failed attempt, as ``queue show``."""

    traceback: str | None


class ScheduleInfo(Struct):
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


class CatalogListener(Struct):
    """A listener of a catalog entry, with the parameters it accepts."""

    listener: str
    signature: str | None
    parameters: list[dict[str, Any]] | None
    check: str


class EventInfo(Struct):
    """One event id (or pattern) of the catalog, with the listeners that take it."""

    event: str
    pattern: bool
    listeners: list[CatalogListener]


class JournalStatus(Struct):
    """The journal of a daemon that keeps one: where, how big, whether it can be written."""

    path: str
    bytes: int
    writable: bool
    error: str | None


class BackendStatus(Struct):
    """The shared store of a daemon on one: where, whether it answers, who shares it."""

    url: str
    name: str
    prefix: str
    available: bool
    problem: str | None
    store: str
    """Which store: "Redis" or "PostgreSQL"."""
    version: str | None
    """The server's version, once connected."""
    daemons: list[dict[str, Any]]
    claim_after: float


class ThreadsStatus(Struct):
    """The threads of sync listeners: how many at most, how many hung past their timeout."""

    max: int
    stuck: int


class SchedulesStatus(Struct):
    """How many schedules the daemon serves, and when the next one fires."""

    count: int
    next: str | None


class HealthReport(Struct):
    """Whether the daemon is healthy; ``problems`` say what is wrong."""

    healthy: bool
    problems: list[str]
    failed_recently: int


class Status(Struct):
    """The daemon's status, as ``status`` shows it."""

    pid: int
    version: str
    protocol: int
    uptime_s: float
    socket: str
    config: str | None
    listeners_dir: str
    listeners: int
    journal: JournalStatus | None
    backend: BackendStatus | None
    metrics: str | None
    threads: ThreadsStatus
    schedules: SchedulesStatus
    draining: bool
    health: HealthReport
    queue: QueueCounts


# -- changing -------------------------------------------------------------------------------


class Retried(Struct):
    """The failed deliveries a ``retry`` queued again."""

    retried: list[int]


class Purged(Struct):
    """How many deliveries of ``state`` a ``purge`` dropped."""

    purged: int
    state: str


class ReloadResult(Struct):
    """What a reload changed, by listener name."""

    listeners: int
    added: list[str]
    removed: list[str]
    kept: list[str]
    failed: int
    schedules: int


class PauseState(Struct):
    """A listener after a ``pause`` or ``resume``: paused or not, and until when (None:
    until resumed)."""

    listener: str
    paused: bool
    until: str | None


class Acknowledged(Struct):
    """The problems an ``acknowledge`` cleared (a shared store's lost data, say)."""

    acknowledged: list[str]


class Stopping(Struct, omit_defaults=True):
    """The answer to ``stop``: the daemon's pid, to wait for its exit, and how many
    deliveries emitted for later it drops (kept nowhere else: no journal, no shared store)."""

    stopping: bool
    drain: bool
    pid: int
    dropped_scheduled: int = 0
