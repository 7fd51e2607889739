"""``/metrics`` in Prometheus's text format (the ``metrics`` extra: prometheus-client).

Most figures are read at scrape time from what the broker, the emitter and the connections
count anyway; the daemon adds only counts by event id and the delivery timings. Labels come
from loaded listener names, event ids that matched a listener, schedule names and error
codes, so no client can add series by sending made-up ids: an id no listener takes counts
in the one ``eventbus_events_unrouted_total``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from ..bus.timings import BOUNDS, Histogram
from ..errors import BackendError, ConfigError
from ..names import EVENT_ID, is_pattern
from .accepting import accept_forever

if TYPE_CHECKING:
    from pathlib import Path

    from ..bus.delivery import ListenerStats
    from ..bus.emitter import SimpleEventEmitter
    from ..config import MetricsConfig

__all__ = ("Metrics", "serve_metrics")

logger = logging.getLogger("eventbus.daemon")

_REQUEST_BYTES = 8192
_LABELS_KEPT = 4096  # event ids whose label is remembered; more start the memory afresh


class Metrics:
    """The daemon's figures for Prometheus. The daemon tells it what only it sees (emits and
    refusals by event, schedule fires, journal commits); the rest is read from ``emitter``
    and ``open_connections`` when scraped."""

    def __init__(self, emitter: SimpleEventEmitter, open_connections: Callable[[], int],
                 journal_commits: Histogram | None = None) -> None:
        self.emitter = emitter
        self.open_connections = open_connections
        self.journal_commits = journal_commits
        self.emitted: Counter[str] = Counter()
        self.refused: Counter[tuple[str, str]] = Counter()
        self.fires: Counter[str] = Counter()
        self._labels: dict[str, str] = {}
        """The ``event`` label of each event id seen lately (see :meth:`label`)."""

    def label(self, event_id: str) -> str:
        """The ``event`` label of ``event_id``: the id itself where a listener names it
        exactly; else the first glob of a listener that matches it (``bulk.*``), so that
        made-up ids never grow the series; empty where no listener takes it."""
        label = self._labels.get(event_id)
        if label is None:
            listeners = self.emitter.listeners_for(event_id) if _is_id(event_id) else ()
            if any(event_id in item.event_ids for item in listeners):
                label = event_id
            else:
                label = min((glob for item in listeners for glob in item.event_ids
                             if is_pattern(glob) and fnmatchcase(event_id, glob)), default="")
            if len(self._labels) >= _LABELS_KEPT:
                self._labels.clear()
            self._labels[event_id] = label
        return label

    def count_emitted(self, event_id: str, deliveries: int) -> None:
        """An event accepted with ``deliveries`` (0: unrouted, which the broker counts)."""
        if deliveries:
            self.emitted[self.label(event_id)] += 1

    def count_refused(self, event_id: str, code: str) -> None:
        """An emit refused with error ``code``, labelled as :meth:`label` says."""
        self.refused[(self.label(event_id), code)] += 1

    def count_fire(self, name: str, event_id: str, deliveries: int) -> None:
        """A schedule fired (the scheduler's ``on_fire``), an emit like a client's."""
        self.fires[name] += 1
        self.count_emitted(event_id, deliveries)

    def collect(self) -> Iterator[Any]:
        """The metric families, as prometheus-client's collectors give them."""
        self._labels.clear()  # a reload may have changed them: ask afresh from now on
        from prometheus_client.core import CounterMetricFamily as CounterFamily
        from prometheus_client.core import GaugeMetricFamily as GaugeFamily

        stats = self.emitter.stats()
        emitted = CounterFamily("eventbus_events_emitted", "Events accepted that matched a "
                                "listener, by event id.", labels=["event"])
        for event_id, count in sorted(self.emitted.items()):
            emitted.add_metric([event_id], count)
        yield emitted
        yield CounterFamily("eventbus_events_unrouted", "Events accepted that matched no "
                            "listener (all ids in one series).", value=stats.unrouted)
        yield CounterFamily("eventbus_events_duplicates", "Emits answered as duplicates of "
                            "one accepted lately with the same dedupe key (nothing queued).",
                            value=stats.duplicates)
        refused = CounterFamily("eventbus_events_refused", "Emits refused, by event id (empty "
                                "for an id no listener takes) and error code.",
                                labels=["event", "code"])
        for (event_id, code), count in sorted(self.refused.items()):
            refused.add_metric([event_id, code], count)
        yield refused
        by_listener = sorted(stats.listeners.items())
        counts_of: tuple[tuple[str, str, Callable[[ListenerStats], int]], ...] = (
            ("started", "Attempts begun (a retry is one more).",
             lambda s: s.succeeded + s.failed + s.retried + s.running),
            ("succeeded", "Deliveries that succeeded.", lambda s: s.succeeded),
            ("retried", "Attempts after a failure (retries).", lambda s: s.retried),
            ("failed", "Deliveries failed for good (into the failed list).", lambda s: s.failed),
        )
        for name, help_text, value in counts_of:
            family = CounterFamily(f"eventbus_deliveries_{name}", f"{help_text} By listener.",
                                   labels=["listener"])
            for listener, counts in by_listener:
                family.add_metric([listener], value(counts))
            yield family
        yield from self._timings()
        queue = GaugeFamily("eventbus_queue_deliveries", "Deliveries held now, by state "
                            "(failed: the failed list).", labels=["state"])
        for state, count in (("pending", stats.pending), ("scheduled", stats.scheduled),
                             ("retrying", stats.retrying), ("running", stats.running),
                             ("failed", stats.failed_list)):
            queue.add_metric([state], count)
        yield queue
        yield GaugeFamily("eventbus_workers_busy", "Workers running a listener call now.",
                          value=stats.running)
        yield GaugeFamily("eventbus_workers", "The worker pool (concurrency).",
                          value=self.emitter.concurrency)
        threads = self.emitter.threads
        yield GaugeFamily("eventbus_threads_busy", "Threads running a sync listener now.",
                          value=threads.busy)
        yield GaugeFamily("eventbus_threads_stuck", "Sync calls still running past their "
                          "timeout.", value=threads.stuck)
        yield GaugeFamily("eventbus_connections_open", "Client connections open now.",
                          value=self.open_connections())
        broker = self.emitter.broker
        paused = GaugeFamily("eventbus_listener_paused", "1 for a listener an operator paused "
                             "(its deliveries wait), by listener.", labels=["listener"])
        for name in sorted(broker.paused()):
            paused.add_metric([name], 1)
        yield paused
        waits = CounterFamily("eventbus_rate_limited_waits", "Times a listener's rate held "
                              "back a delivery that could have started, by listener.",
                              labels=["listener"])
        for name, lane in sorted(broker.lanes.by_name.items()):
            if lane.slot.rate is not None:
                waits.add_metric([name], lane.rate_waits)
        yield waits
        fires = CounterFamily("eventbus_schedule_fires", "Schedule fires, by schedule.",
                              labels=["schedule"])
        for name, count in sorted(self.fires.items()):
            fires.add_metric([name], count)
        yield fires
        if (link := self.emitter.broker.link_state()) is not None:
            errors, up = link
            yield CounterFamily("eventbus_backend_errors", "Calls to Redis that failed (a "
                                "lost connection, a refusing server).", value=errors)
            yield GaugeFamily("eventbus_backend_up", "1 while Redis answers, else 0 (emits "
                              "are refused meanwhile).", value=int(up))
        if self.journal_commits is not None:
            yield _histogram("eventbus_journal_commit_seconds", "Time to commit a batch of "
                             "changes to the journal (SQLite, synchronous=FULL).", [],
                             [([], self.journal_commits)])

    def _timings(self) -> Iterator[Any]:
        timings = self.emitter.timings.items() if self.emitter.timings is not None else []
        yield _histogram("eventbus_delivery_duration_seconds", "How long attempts ran, by "
                         "listener.", ["listener"], [([name], t.ran) for name, t in timings])
        yield _histogram("eventbus_delivery_wait_seconds", "How long attempts waited from "
                         "the emit (or the due time) to their start, by listener.",
                         ["listener"], [([name], t.waited) for name, t in timings])


def _histogram(name: str, help_text: str, labels: list[str],
               series: list[tuple[list[str], Histogram]]) -> Any:
    from prometheus_client.core import HistogramMetricFamily

    family = HistogramMetricFamily(name, help_text, labels=labels)
    for values, histogram in series:
        running, buckets = 0, []
        for bound, count in zip((*BOUNDS, float("inf")), histogram.counts, strict=True):
            running += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
        family.add_metric(values, buckets, histogram.sum)
    return family


def _is_id(event_id: str) -> bool:
    """Whether ``event_id`` is one (a retry's QueueFullError names deliveries instead)."""
    return EVENT_ID.fullmatch(event_id) is not None


def render(metrics: Metrics) -> bytes:
    """The text format of what ``metrics`` holds now."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)  # a collector is anything with collect()
    return generate_latest(registry)


def check_listen(config: MetricsConfig, file: Path | None = None) -> None:
    """Fail at start if prometheus-client is missing; warn when not on loopback."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise ConfigError(file, "metrics.listen", "needs prometheus-client: pip "
                          "install 'eventbus-cli[metrics]', or leave [metrics] out") from None
    host, _ = config.address
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        logger.warning("metrics are served on %s, which is not loopback: anyone who can reach "
                       "it can read the event ids and listener names", config.listen)


async def serve_metrics(config: MetricsConfig, metrics: Metrics, *,
                        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
                        ) -> None:
    """Answer ``GET /metrics`` on ``config.listen`` until cancelled, on the daemon's own
    event loop (so a scrape reads the counters between two deliveries, never during one)."""
    host, port = config.address
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    logger.info("metrics on http://%s/metrics", config.listen)
    task_status.started()
    answering = 0

    async def answer(stream: anyio.abc.SocketStream) -> None:
        nonlocal answering
        try:
            await _answer(stream, metrics)
        finally:
            answering -= 1

    def take(stream: anyio.abc.SocketStream) -> None:
        nonlocal answering
        if answering >= MAX_SCRAPES:  # any local user may connect: hold few, close the rest
            group.start_soon(stream.aclose)
            return
        answering += 1
        group.start_soon(answer, stream)

    async with listener, anyio.create_task_group() as group:
        for each in listener.listeners:  # one per address family the host resolves to
            assert isinstance(each, anyio.abc.SocketListener)  # TCP: it accepts one by one
            group.start_soon(accept_forever, each, f"the metrics port {config.listen}", take)


MAX_SCRAPES = 16
"""Connections to the metrics port answered at once; more are closed as they come."""
_REQUEST_SECONDS = 5.0
"""How long a connection to the metrics port may take to send its request."""


async def _answer(stream: anyio.abc.ByteStream, metrics: Metrics) -> None:
    async with stream:
        request = b""
        with anyio.move_on_after(_REQUEST_SECONDS):
            while b"\r\n\r\n" not in request and len(request) < _REQUEST_BYTES:
                try:
                    request += await stream.receive(_REQUEST_BYTES)
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return
        method, _, rest = request.partition(b" ")
        path = rest.partition(b" ")[0].partition(b"?")[0]
        if method in (b"GET", b"HEAD") and path == b"/metrics":
            with contextlib.suppress(BackendError):  # Redis away: the counts last known
                await metrics.emitter.broker.refresh()  # a shared bus: its counts now
            status, body = b"200 OK", render(metrics)
            kind = b"text/plain; version=0.0.4; charset=utf-8"
        else:
            status, body, kind = b"404 Not Found", b"only GET /metrics here\n", b"text/plain"
        head = (b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                b"Connection: close\r\n\r\n" % (status, kind, len(body)))
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            await stream.send(head + (b"" if method == b"HEAD" else body))
