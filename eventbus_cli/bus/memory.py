"""``MemoryBroker``: local lanes, with the failed list, dedupe keys, ids and schedule fires
held in this process, and (given a ``journal``) every change written through to it.

The lanes (:class:`~.lanes.LocalLanes`) hold what waits and runs; this broker adds what
the daemon promises about them: ids, the failed list, dedupe keys, the counters of events
that matched no listener. With a journal (SQLite, in ``stores/``) each change is also
handed to it on the event loop, and :meth:`settled` waits for it to be written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from itertools import count
from typing import TYPE_CHECKING, Any

import anyio

from ..checks import number_problem
from ..config import DaemonConfig, DeliveryConfig
from ..errors import DeliveryError, QueueFullError
from .broker import Broker, Journal
from .dedupe import DedupeKeys
from .delivery import Delivery, DeliveryState, EmitterStats
from .failed_list import FailedList
from .lane import Lane
from .lanes import LocalLanes
from .routing import Slot

if TYPE_CHECKING:
    from ..protocol.event import Placing
    from ..protocol.results import BackendStatus, JournalStatus

__all__ = ("MemoryBroker",)

logger = logging.getLogger("eventbus.emitter")


class MemoryBroker(Broker):
    """Deliveries in memory: without a ``journal``, a restart loses what waits.
    ``keep_failed`` bounds the failed list (the newest are kept); ``max_bytes``, when given,
    bounds the bytes of encoded events waiting, as measured by whoever puts them (the
    daemon: the request's size)."""

    def __init__(self, *, queue_size: int = DaemonConfig.queue_size,
                 keep_failed: int = DeliveryConfig.keep_failed, max_bytes: int | None = None,
                 max_scheduled: int = DaemonConfig.max_scheduled,
                 dedupe_window: float = DaemonConfig.dedupe_window,
                 max_dedupe_keys: int = DaemonConfig.max_dedupe_keys,
                 journal: Journal | None = None) -> None:
        for key, value, minimum in (("queue_size", queue_size, 1), ("keep_failed", keep_failed, 0),
                                    ("max_bytes", 1 if max_bytes is None else max_bytes, 1),
                                    ("max_scheduled", max_scheduled, 0)):
            if (want := number_problem(value, whole=True, minimum=minimum)) is not None:
                raise ValueError(f"{key} must be {want}, not {value!r}")
        self.lanes = LocalLanes(size=queue_size, max_bytes=max_bytes,
                                max_scheduled=max_scheduled)
        self.keys = DedupeKeys(dedupe_window, max_dedupe_keys)
        self._failed = FailedList(keep_failed)
        self._unrouted = 0
        self._duplicates = 0
        self._ids = count(1)
        # The hot path asks the lanes itself, without a call through Broker.has_room.
        self.has_room = self.lanes.has_room  # type: ignore[method-assign]
        self.journal = journal
        if journal is not None:
            self.durable = True
            self.store = "the journal"
            self.commit_times = journal.commit_times
            self.lanes.on_done = journal.forgotten
            for key, expires, answer in journal.dedupe_keys():
                self.keys.remember(key, answer, expires)

    def describe(self) -> str:
        return super().describe() if self.journal is None else self.journal.describe()

    def status(self) -> tuple[JournalStatus | None, BackendStatus | None]:
        return super().status() if self.journal is None else self.journal.status()

    def problems(self) -> list[str]:
        return [] if self.journal is None else self.journal.problems()

    # -- listeners ---------------------------------------------------------------------------

    def serve(self, slots: Sequence[Slot], *, reason: str) -> int:
        orphans = self.lanes.serve(slots)
        for delivery, lane in orphans:
            delivery.error = f"ListenerRemoved: listener {delivery.listener} {reason}"
            delivery.traceback = None
            self._fail(delivery, lane)
        if self.journal is not None and (loaded := self.journal.take_loaded(
                [slot.name for slot in slots])) is not None:
            for name, until in self.journal.pauses().items():
                self.lanes.pause(name, until)
            deliveries, next_id, not_loaded = loaded
            self._restore(deliveries, next_id, reason=not_loaded)
        return len(orphans)

    async def pause(self, name: str, until: float | None = None) -> None:
        if self.journal is not None:
            await self.journal.keep_pause(name, True, until)
        self.lanes.pause(name, until)

    async def resume(self, name: str) -> None:
        if self.journal is not None:
            await self.journal.keep_pause(name, False)
        self.lanes.resume(name)

    def serves(self, name: str) -> bool:
        return name in self.lanes.by_name

    # -- emitting ----------------------------------------------------------------------------

    def put(self, event_id: str, slots: Sequence[Slot], args: tuple[Any, ...],
            kwargs: dict[str, Any], size: int = 0, due_at: float | None = None,
            key: str | None = None, ordering: Placing | None = None) -> Sequence[Delivery]:
        lanes = self.lanes
        if not slots:
            self._unrouted += 1
            logger.debug("event %r matched no listener; counted as unrouted", event_id)
            if lanes.observers and due_at is None:
                lanes.tell("emitted", event_id, ())
            return ()
        if due_at is None:
            made = (lanes.queue(event_id, slots, args, kwargs, size, self._ids)
                    if ordering is None else
                    lanes.queue(event_id, slots, args, kwargs, size, self._ids, ordering))
        else:
            now, ids, by_name = time.time(), self._ids, lanes.by_name
            made = [Delivery(next(ids), event_id, args, kwargs, slot.name, 0.0, size, now)
                    for slot in slots]
            for delivery in made:
                if ordering is not None:
                    delivery.priority, delivery.order_key = ordering
                lanes.schedule(delivery, by_name[delivery.listener], due_at)
        if self.journal is not None:
            self.journal.kept(made)
        if lanes.observers:
            lanes.tell("emitted", event_id, made)
        return made

    def answer_for(self, key: str) -> dict[str, Any] | None:
        """The first answer for ``key``, if lately accepted; only an emit about to be answered
        as a duplicate asks, so a key found counts one duplicate."""
        answer = self.keys.answer_for(key)
        if answer is not None:
            self._duplicates += 1
        return answer

    def remember(self, key: str, answer: dict[str, Any]) -> None:
        expires = self.keys.remember(key, answer)
        if self.journal is not None:
            self.journal.remember(key, expires, answer, self.keys.prune())

    def fires(self) -> dict[str, float]:
        return {} if self.journal is None else self.journal.fires()

    def note_fire(self, name: str, when: float) -> None:
        if self.journal is not None:
            self.journal.note_fire(name, when)

    # -- outcomes ----------------------------------------------------------------------------

    def failed(self, delivery: Delivery, error: str, traceback: str | None, *,
               retry_in: float | None) -> None:
        lanes = self.lanes
        lane = lanes.release(delivery)
        delivery.error, delivery.traceback = error, traceback
        if retry_in is None or lane.retired:
            self._fail(delivery, lane)
            return
        lanes.retry_in(delivery, lane, retry_in)
        if self.journal is not None:
            self.journal.kept((delivery,))
        if lanes.observers:
            lanes.tell("finished", delivery)

    def _fail(self, delivery: Delivery, lane: Lane | None) -> None:
        lanes = self.lanes
        delivery.state = DeliveryState.FAILED
        delivery.failed_at = time.time()
        if lane is not None and not lane.retired:
            lane.failed += 1
        else:
            lanes.gone.failed += 1
        if self.journal is not None:
            self.journal.kept((delivery,))
        if lane is not None:
            lanes.ended(delivery, lane)
        if lanes.observers:  # before the list may push it out again (keep_failed 0)
            lanes.tell("finished", delivery)
        if pushed := self._failed.add(delivery):
            self._forget(pushed)
        lanes.check_joined()

    def _forget(self, dropped: Sequence[Delivery]) -> None:
        if self.journal is not None:
            self.journal.forgotten(dropped)
        self.lanes.tell("removed", dropped)

    # -- inspection --------------------------------------------------------------------------

    def stats(self) -> EmitterStats:
        lanes = self.lanes
        per_listener = lanes.listener_stats()
        counts = per_listener.values()
        return EmitterStats(
            pending=lanes.waiting - len(lanes.delayed), running=len(lanes.running),
            retrying=len(lanes.delayed), scheduled=len(lanes.scheduled),
            next_due=lanes.scheduled.next_due,
            succeeded=sum(stats.succeeded for stats in counts) + lanes.gone.succeeded,
            failed=sum(stats.failed for stats in counts) + lanes.gone.failed,
            unrouted=self._unrouted, listeners=per_listener, failed_list=len(self._failed),
            duplicates=self._duplicates, queued_bytes=lanes.queued_bytes,
        )

    def deliveries(self, state: DeliveryState | None = None) -> Iterator[Delivery]:
        found = [*self.lanes.held(), *self._failed]
        return (d for d in found if state is None or d.state is state)

    # -- the failed list ---------------------------------------------------------------------

    @property
    def failed_list(self) -> list[Delivery]:
        return list(self._failed)

    async def retry(self, delivery_ids: Iterable[int] | None) -> list[Delivery]:
        lanes = self.lanes
        chosen = self._failed.select(delivery_ids, self._state_of)
        for delivery in chosen:
            if delivery.listener not in lanes.by_name:
                raise DeliveryError(delivery.id, f"listener {delivery.listener} is not loaded "
                                    "any more; add it back and reload, or purge it")
        nbytes = sum(delivery.size for delivery in chosen)
        if not lanes.has_room(len(chosen)):
            raise QueueFullError(f"{len(chosen)} failed deliveries", len(chosen), lanes.size)
        if lanes.max_bytes is not None and not lanes.fits_bytes(nbytes):
            raise QueueFullError(f"{len(chosen)} failed deliveries", nbytes, lanes.max_bytes,
                                 unit="bytes")
        self._failed.remove(chosen)
        for delivery in chosen:
            delivery.attempts = 0
            lanes.add(delivery, lanes.by_name[delivery.listener])
        if self.journal is not None:
            self.journal.kept(chosen)
        lanes.tell("requeued", chosen)
        return chosen

    def _state_of(self, delivery_id: int) -> DeliveryState | None:
        return next((d.state for d in self.deliveries() if d.id == delivery_id), None)

    async def purge(self, state: DeliveryState) -> int:
        lanes = self.lanes
        if state is DeliveryState.FAILED:
            dropped = self._failed.clear()
        elif state is DeliveryState.PENDING:
            dropped = [d for lane in lanes.by_name.values()
                       for d in lanes.withdraw(lane, scheduled=False)]
        elif state is DeliveryState.SCHEDULED:
            dropped = lanes.clear_scheduled()
        else:
            raise ValueError("purge takes failed, pending or scheduled deliveries, not "
                             f"{state.value}")
        if dropped:
            logger.warning("purged %d %s deliveries", len(dropped), state.value)
            self._forget(dropped)
        lanes.check_joined()
        return len(dropped)

    def _restore(self, deliveries: Iterable[Delivery], next_id: int, *, reason: str) -> None:
        """Take back deliveries the journal kept, by listener name: failed ones into the
        failed list, the rest queued again; those of a name not served fail with ``reason``.
        New deliveries are numbered from ``next_id`` on."""
        lanes = self.lanes
        for delivery in deliveries:
            lane = lanes.by_name.get(delivery.listener)
            if delivery.state is DeliveryState.FAILED:
                self._failed.restore(delivery)
            elif lane is None:
                delivery.error = f"ListenerRemoved: listener {delivery.listener} {reason}"
                self._fail(delivery, None)
            elif delivery.state is DeliveryState.SCHEDULED and delivery.due_at is not None:
                lanes.schedule(delivery, lane, delivery.due_at)  # if past due: run() fires it
            else:
                lanes.add(delivery, lane)
        self._ids = count(next_id)

    # -- life --------------------------------------------------------------------------------

    async def run(self) -> None:
        if self.journal is None:
            await self.lanes.run()
            return
        async with anyio.create_task_group() as group:
            group.start_soon(self.lanes.run)
            await self.journal.run()

    async def settled(self) -> None:
        if self.journal is not None:
            await self.journal.settled()

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close()

    async def join(self) -> None:
        await self.lanes.join()
