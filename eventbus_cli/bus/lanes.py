"""``LocalLanes``: the one owner of the deliveries this process holds, in one
:class:`~.lane.Lane` per listener name.

Invariants (kept by every method here, relied on by every broker that composes it):

- Each served listener name has one :class:`~.lane.Lane`: its pending deliveries (by
  priority, order keys one at a time: see :mod:`.lane`), the calls it runs, its counters.
  A name no longer served has its lane retired: its waiting deliveries are handed back to
  the broker, its running calls finish and count in :attr:`LocalLanes.gone`.
- Workers serve the lanes that have deliveries waiting in turn (round robin), and no lane
  runs more than its slot's ``limit`` calls at once, so a slow listener that fills the pool
  still leaves a worker for the rest. A paused lane starts nothing; a lane with a rate
  starts its calls at least ``1 / rate`` seconds apart (``pace`` says when the next may
  start: at once here, or when a shared store grants it).
- Deliveries that wait for a time sit in one of two heaps, moved back into their lanes by
  :meth:`LocalLanes.run`: retries waiting out a backoff (``time.monotonic()``) and emits for
  later (``time.time()``: a due time is a date).
- Room: pending plus retrying deliveries never exceed ``size``, nor the bytes of the events
  they carry ``max_bytes`` (failures of running calls may overshoot either by at most what
  the workers hold); scheduled ones count against ``max_scheduled`` until they start, even
  once due, so a burst of due work never blocks the emits of ready work.
- Every change of a delivery's state is told to the observers (live views), and one that
  ends a delivery's stay here to :attr:`LocalLanes.on_done` (a durable store's hook).

The lanes know nothing about disks or networks, nor about ids, dedupe keys or the failed
list: those are the broker's.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any

import anyio

from ..protocol.event import Placing
from .delivery import Delivery, DeliveryObserver, DeliveryState, ListenerStats
from .due import DueHeap
from .lane import Lane
from .routing import Slot

__all__ = ("LocalLanes",)


logger = logging.getLogger("eventbus.emitter")
# Module globals: the hot path reads them for every delivery, quicker than class attributes.
_RUNNING, _SUCCEEDED = DeliveryState.RUNNING, DeliveryState.SUCCEEDED


class LocalLanes:
    """The deliveries this process holds, fair between listeners (see the module's
    docstring for what it keeps true)."""

    def __init__(self, *, size: int, max_bytes: int | None, max_scheduled: int) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.max_scheduled = max_scheduled
        self.by_name: dict[str, Lane] = {}
        self.running: dict[int, tuple[Delivery, Lane]] = {}
        self.waiting = 0  # pending plus delayed
        self.queued_bytes = 0  # sizes of the pending and delayed deliveries
        self.gone = ListenerStats()
        """Outcomes of listeners no longer served (removed by a reload, or not loaded after
        a restart): the totals count them, though no lane shows them any more."""
        self.observers: list[DeliveryObserver] = []
        self.on_done: Callable[[Sequence[Delivery]], None] | None = None
        """Told of deliveries that succeeded (a durable store forgets them)."""
        self.delayed = DueHeap()  # retries waiting out their backoff, by time.monotonic()
        self.scheduled = DueHeap()  # emits for later, by time.time()
        self._ready: deque[Lane] = deque()
        self._idle: deque[anyio.Event] = deque()  # one per worker waiting for work
        self._room_waiters: list[anyio.Event] = []
        # Ids (and bytes) of the pending that were scheduled and came due: admitted under
        # max_scheduled, they wait in the lanes without taking the room of ready work.
        self._released: set[int] = set()
        self._released_bytes = 0
        self._wakeup: anyio.Event | None = None  # made in run(), inside the loop
        self._joined: anyio.Event | None = None
        self._paced: list[tuple[float, int, Lane]] = []  # lanes held back by their rate
        self.pauses: dict[str, float | None] = {}
        """Paused listener names, with the time.time() each resumes at (None: when told)."""
        self.pace: Callable[[Lane], None] | None = None
        """Told, as a call of a lane with a rate starts, to have a shared store grant the
        lane's next start (it answers with :meth:`grant`), so the rate holds bus-wide."""

    # -- listeners ---------------------------------------------------------------------------

    def serve(self, slots: Sequence[Slot]) -> list[tuple[Delivery, Lane]]:
        """Serve these listeners from now on, by name; retire the lanes of names not among
        them and return what waited in those (pending, retrying, scheduled), by id."""
        served = {slot.listener.name for slot in slots}
        orphans: list[tuple[Delivery, Lane]] = []
        for name in [name for name in self.by_name if name not in served]:
            lane = self.by_name.pop(name)
            lane.retired = True
            self.gone.succeeded += lane.succeeded
            self.gone.failed += lane.failed
            orphans += [(delivery, lane) for delivery in self.withdraw(lane)]
        for slot in slots:
            kept = self.by_name.get(slot.listener.name)
            if kept is None:
                lane = self.by_name[slot.listener.name] = Lane(slot)
                if slot.listener.name in self.pauses:
                    lane.paused = True
                    self._set_open(lane, False)
                if slot.rate is not None and self.pace is not None:  # its first start too
                    lane.paced, lane.next_start = True, math.inf
                    self._set_open(lane, False)
                    self.pace(lane)
            else:
                kept.slot = slot
                self._make_ready(kept)
        self.by_name = {slot.listener.name: self.by_name[slot.listener.name] for slot in slots}
        return sorted(orphans, key=lambda pair: pair[0].id)

    def withdraw(self, lane: Lane, *, scheduled: bool = True) -> list[Delivery]:
        """Remove and return the lane's pending and retrying deliveries, and (``scheduled``)
        those waiting for their due time."""
        taken = lane.queue.clear()
        if lane.ready and lane.open:  # (a closed lane is marked ready, out of the round)
            self._ready.remove(lane)
            lane.ready = False
        if lane.delayed:
            backing_off = self.delayed.take_lane(lane)
            for delivery in backing_off:
                lane.queue.forget(delivery)
            taken += backing_off
            lane.delayed = 0
        self.waiting -= len(taken)
        self.queued_bytes -= sum(delivery.size for delivery in taken)
        if self._released:  # those that came due no longer stand apart from the ready bound
            settled = [delivery for delivery in taken if delivery.id in self._released]
            self._released.difference_update(delivery.id for delivery in settled)
            self._released_bytes -= sum(delivery.size for delivery in settled)
        if scheduled and lane.scheduled:
            taken += self.scheduled.take_lane(lane)
            lane.scheduled = 0
        if taken:
            self.wake_all()
        return taken

    def clear_scheduled(self) -> list[Delivery]:
        """Remove and return every delivery waiting for its due time."""
        dropped = self.scheduled.clear()
        for lane in self.by_name.values():
            lane.scheduled = 0
        return dropped

    # -- room --------------------------------------------------------------------------------

    def has_room(self, needed: int, size: int = 0, *, later: bool = False) -> bool:
        """Whether ``needed`` more deliveries of ``size`` bytes each fit now; with ``later``,
        whether that many more may wait for a due time."""
        if later:
            return len(self.scheduled) + len(self._released) + needed <= self.max_scheduled
        return self.waiting - len(self._released) + needed <= self.size and (
            self.max_bytes is None
            or self.queued_bytes - self._released_bytes + needed * size <= self.max_bytes)

    def _half_empty(self) -> bool:
        return self.waiting - len(self._released) <= self.size // 2 and (
            self.max_bytes is None
            or self.queued_bytes - self._released_bytes <= self.max_bytes // 2)

    async def wait_for_room(self) -> None:
        """Return once room may have been made (drained to half full), or on
        :meth:`wake_all`."""
        room = anyio.Event()
        self._room_waiters.append(room)
        await room.wait()

    def wake_all(self) -> None:
        """Wake every task waiting for room, to check again."""
        waiters, self._room_waiters = self._room_waiters, []
        for room in waiters:
            room.set()

    @property
    def waiting_for_room(self) -> bool:
        """Whether a task waits for room."""
        return bool(self._room_waiters)

    def fits_bytes(self, nbytes: int) -> bool:
        """Whether ``nbytes`` more bytes of waiting events fit under ``max_bytes``."""
        return self.max_bytes is None or (
            self.queued_bytes - self._released_bytes + nbytes <= self.max_bytes)

    # -- queueing ----------------------------------------------------------------------------

    def queue(self, event_id: str, slots: Sequence[Slot], args: tuple[Any, ...],
              kwargs: dict[str, Any], size: int, ids: Iterator[int],
              placing: Placing | None = None) -> list[Delivery]:
        """Make one delivery of the event per slot, numbered from ``ids``, and queue each in
        the lane of its listener (which must be served), at the priority and with the order
        key of ``placing``; return them. The hot path of every emit: one loop, no call per
        delivery."""
        if placing is not None:
            return self._queue_placed(event_id, slots, args, kwargs, size, ids, placing)
        queued_at = time.monotonic() if self.observers else 0.0  # for tail's waited time
        now = time.time()
        lanes, idle, ready = self.by_name, self._idle, self._ready
        made = []
        for slot in slots:
            delivery = Delivery(next(ids), event_id, args, kwargs, slot.name, queued_at, size,
                                now)
            made.append(delivery)
            lane = lanes[slot.name]
            lane.queue.normal.append(delivery)
            if not lane.ready and lane.running < slot.limit:  # (a closed lane counts as ready)
                lane.ready = True
                ready.append(lane)
            if idle:
                idle.popleft().set()
        self.waiting += len(made)
        self.queued_bytes += size * len(made)
        return made

    def _queue_placed(self, event_id: str, slots: Sequence[Slot], args: tuple[Any, ...],
                      kwargs: dict[str, Any], size: int, ids: Iterator[int],
                      placing: Placing) -> list[Delivery]:
        """:meth:`queue` for an emit with a priority or an order key."""
        queued_at = time.monotonic() if self.observers else 0.0
        now = time.time()
        lanes, idle, ready = self.by_name, self._idle, self._ready
        priority, key = placing
        made = []
        for slot in slots:
            delivery = Delivery(next(ids), event_id, args, kwargs, slot.name, queued_at, size,
                                now)
            delivery.priority, delivery.order_key = priority, key
            made.append(delivery)
            lane = lanes[slot.name]
            pending = lane.queue
            if key is None:
                pending.levels[priority].append(delivery)
            else:
                pending.append(delivery)  # behind the holder of its key, maybe
            if not lane.ready and lane.running < slot.limit and (
                    key is None or pending.takeable):
                lane.ready = True
                ready.append(lane)
            if idle:
                idle.popleft().set()
        self.waiting += len(made)
        self.queued_bytes += size * len(made)
        return made

    def add(self, delivery: Delivery, lane: Lane) -> None:
        """Queue one delivery again (a retry, a restored or a read one) in ``lane``."""
        delivery.state = DeliveryState.PENDING
        self._append(lane, delivery)
        if self._idle:
            self._idle.popleft().set()
        self.waiting += 1
        self.queued_bytes += delivery.size

    def schedule(self, delivery: Delivery, lane: Lane, due_at: float) -> None:
        """Hold ``delivery`` until ``due_at`` (a time.time()); past due, it runs at once."""
        delivery.state = DeliveryState.SCHEDULED
        delivery.due_at = due_at
        lane.scheduled += 1
        if self.scheduled.push(due_at, delivery, lane) and self._wakeup is not None:
            self._wakeup.set()

    def retry_in(self, delivery: Delivery, lane: Lane, seconds: float) -> None:
        """Queue ``delivery`` again in ``seconds`` (a retry's backoff)."""
        delivery.state = DeliveryState.RETRYING
        lane.delayed += 1
        self.waiting += 1
        self.queued_bytes += delivery.size
        if self.delayed.push(time.monotonic() + seconds, delivery, lane) and (
                self._wakeup is not None):
            self._wakeup.set()

    def _append(self, lane: Lane, delivery: Delivery) -> None:
        lane.queue.append(delivery)
        if not lane.ready and lane.may_start():
            lane.ready = True
            self._ready.append(lane)

    def _make_ready(self, lane: Lane) -> None:
        if not lane.ready and lane.may_start():
            lane.ready = True
            self._ready.append(lane)
            if self._idle:
                self._idle.popleft().set()

    def ended(self, delivery: Delivery, lane: Lane) -> None:
        """``delivery`` of ``lane`` ended for good (succeeded, or failed at its last
        attempt): its order key passes to the next delivery of that key."""
        if delivery.order_key is not None and lane.queue.ended(delivery) is not None:
            self._make_ready(lane)

    # -- pausing and pacing ------------------------------------------------------------------

    def pause(self, name: str, until: float | None = None) -> None:
        """Pause the listener ``name`` (served now or later): nothing of it starts, what runs
        finishes, until :meth:`resume` or ``until`` (a time.time())."""
        self.pauses[name] = until
        if (lane := self.by_name.get(name)) is not None:
            self._hold(lane, True)
        if until is not None and self._wakeup is not None:
            self._wakeup.set()

    def resume(self, name: str) -> None:
        """Let the listener ``name`` start its deliveries again."""
        self.pauses.pop(name, None)
        if (lane := self.by_name.get(name)) is not None:
            self._hold(lane, False)

    def set_pauses(self, pauses: dict[str, float | None]) -> None:
        """Make these the paused listeners (a shared store's view of the bus)."""
        for name in [name for name in self.pauses if name not in pauses]:
            self.resume(name)
        for name, until in pauses.items():
            if self.pauses.get(name, 0.0) != until or name not in self.pauses:
                self.pause(name, until)

    def _hold(self, lane: Lane, paused: bool) -> None:
        lane.paused = paused
        self._set_open(lane, not paused and not lane.paced)

    def _set_open(self, lane: Lane, open_: bool) -> None:
        """Open ``lane`` to the round of lanes with work, or close it (see :class:`Lane`)."""
        if open_ == lane.open:
            return
        if open_:
            lane.open, lane.ready = True, False
            self._make_ready(lane)
            return
        if lane.ready:
            self._ready.remove(lane)
        lane.open, lane.ready = False, True

    def _expire_pauses(self, today: float) -> float | None:
        """Resume the pauses whose time is up; when the next one is, if any."""
        due = [name for name, until in self.pauses.items() if until is not None and until <= today]
        for name in due:
            logger.info("listener %s resumes: its pause is over", name)
            self.resume(name)
        return min((until for until in self.pauses.values() if until is not None), default=None)

    def _pace(self, lane: Lane) -> None:
        """A call of ``lane`` (which has a rate) starts: hold the next one back until its
        rate allows it, here, or (with ``pace``) until a shared store grants it."""
        if lane.queue.takeable and lane.running < lane.slot.limit:
            lane.rate_waits += 1
        lane.last_start = time.monotonic()
        if self.pace is not None:
            lane.paced, lane.next_start = True, math.inf
            self._set_open(lane, False)
            self.pace(lane)
            return
        now = time.monotonic()
        lane.next_start = max(now, lane.next_start) + 1.0 / lane.slot.rate  # type: ignore[operator]
        self._hold_until(lane, now)

    def _stale(self, lane: Lane) -> bool:
        """Whether ``lane``'s grant went unused for more than half a gap (it idled): then
        it asks for a fresh one rather than start at once, so that daemons whose grants all
        aged while the listener idled do not start together when work comes."""
        gap = 1.0 / lane.slot.rate  # type: ignore[operator]  # a lane with a rate
        if time.monotonic() <= lane.next_start + gap / 2:
            return False
        lane.paced, lane.next_start = True, math.inf
        self._set_open(lane, False)
        self.pace(lane)  # type: ignore[misc]  # set: the caller checked
        return True

    def grant(self, lane: Lane, when: float) -> None:
        """A shared store granted ``lane``'s next start at ``when`` (a time.monotonic()); a
        grant used late still keeps the next start a gap after the last one here."""
        gap = 1.0 / lane.slot.rate if lane.slot.rate else 0.0
        lane.next_start = max(when, lane.last_start + gap)
        self._hold_until(lane, time.monotonic())

    def _hold_until(self, lane: Lane, now: float) -> None:
        if lane.next_start > now:
            lane.paced = True
            self._set_open(lane, False)
            heapq.heappush(self._paced, (lane.next_start, id(lane), lane))
            if self._wakeup is not None:
                self._wakeup.set()
        elif lane.paced:
            lane.paced = False
            self._set_open(lane, not lane.paused)

    def _unpace(self, now: float) -> None:
        paced = self._paced
        while paced and paced[0][0] <= now:
            _, _, lane = heapq.heappop(paced)
            if lane.paced and lane.next_start <= now:
                lane.paced = False
                self._set_open(lane, not lane.paused)

    # -- workers -----------------------------------------------------------------------------

    async def take(self) -> tuple[Delivery, Slot]:
        """Wait for the next delivery due to run, across listeners, fairly; it is running
        from now on, as its ``attempts``-th attempt, on the returned slot."""
        while (taken := self.take_nowait()) is None:
            work = anyio.Event()
            self._idle.append(work)
            await work.wait()
        return taken

    def take_nowait(self) -> tuple[Delivery, Slot] | None:
        """As :meth:`take`, but None at once where no delivery is due."""
        ready = self._ready
        if not ready:
            return None
        lane = ready.popleft()
        lane.ready = False
        if lane.slot.rate is not None and self.pace is not None and self._stale(lane):
            return self.take_nowait()
        pending = lane.queue
        normal = pending.normal
        delivery = normal.popleft() if normal and not pending.levels[0] else pending.popleft()
        lane.running += 1
        self.running[delivery.id] = (delivery, lane)
        if lane.slot.rate is not None:
            self._pace(lane)  # may close the lane: then it stays out of the round
        if lane.open and lane.running < lane.slot.limit and (normal or pending.takeable):
            lane.ready = True
            ready.append(lane)
        self.waiting -= 1
        self.queued_bytes -= delivery.size
        if self._released and delivery.id in self._released:  # it came due: see release_due
            self._released.discard(delivery.id)
            self._released_bytes -= delivery.size
        if self._room_waiters and self._half_empty():
            self.wake_all()
        delivery.state = _RUNNING
        delivery.attempts += 1
        delivery.started_at = time.time()
        if self.observers:
            self.tell("started", delivery)
        return delivery, lane.slot

    def succeeded(self, delivery: Delivery) -> None:
        """The attempt succeeded: the delivery is done."""
        lane = self.running.pop(delivery.id)[1]
        lane.running -= 1
        if delivery.order_key is not None:
            lane.queue.ended(delivery)
        if not lane.ready and not lane.retired and lane.running < lane.slot.limit and (
                lane.queue.normal or lane.queue.takeable):
            self._make_ready(lane)
        if lane.retired:
            self.gone.succeeded += 1
        else:
            lane.succeeded += 1
        delivery.state = _SUCCEEDED
        if self.on_done is not None:
            self.on_done((delivery,))
        if self.observers:
            self.tell("finished", delivery)
        if self._joined is not None:
            self.check_joined()

    def release(self, delivery: Delivery) -> Lane:
        """The attempt ended (not in success): free its place; the caller says what next."""
        lane = self.running.pop(delivery.id)[1]
        lane.running -= 1
        if not lane.retired:
            self._make_ready(lane)
        return lane

    # -- due work ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Move retries whose backoff is over and emits that came due into their lanes,
        until cancelled."""
        delayed, scheduled = self.delayed, self.scheduled
        while True:
            now = time.monotonic()
            for _, _, delivery, lane in delayed.pop_due(now):
                lane.delayed -= 1
                lane.retried += 1
                delivery.state = DeliveryState.PENDING
                lane.queue.again(delivery)
                self._make_ready(lane)
                if self._idle:
                    self._idle.popleft().set()
            if self._paced and self._paced[0][0] <= now:
                self._unpace(now)
            today = time.time()
            if (due := scheduled.next_due) is not None and due <= today:
                self._release_due(today)
            paced = self._paced[0][0] if self._paced else None
            resumes = self._expire_pauses(today) if self.pauses else None
            waits = [due - clock for due, clock in ((delayed.next_due, now),
                                                    (scheduled.next_due, today),
                                                    (paced, now), (resumes, today))
                     if due is not None]
            if waits and min(waits) <= 0:  # more due than one slice: let the loop in first
                await anyio.lowlevel.checkpoint()
                continue
            self._wakeup = anyio.Event()
            with anyio.move_on_after(min(waits, default=None)):
                await self._wakeup.wait()

    def _release_due(self, today: float) -> None:
        """Scheduled deliveries whose time has come wait for a worker like any other, but
        apart from ``size``: a burst of them (bounded by ``max_scheduled``) never blocks the
        emits of ready work until it drains."""
        due = self.scheduled.pop_due(today)
        pending, nbytes = DeliveryState.PENDING, 0
        for _, _, delivery, lane in due:
            lane.scheduled -= 1
            delivery.state = pending
            lane.queue.append(delivery)
            nbytes += delivery.size
        self.queued_bytes += nbytes
        self._released_bytes += nbytes
        self._released.update(map(itemgetter(1), due))
        self.waiting += len(due)
        for lane in dict.fromkeys(map(itemgetter(3), due)):  # each lane once, in order
            self._make_ready(lane)
        while self._idle and self._ready:
            self._idle.popleft().set()
        if self.observers:
            for entry in due:
                self.tell("due", entry[2])

    async def join(self) -> None:
        """Return once nothing is pending, running or retrying here."""
        if self.waiting or self.running:
            self._joined = anyio.Event()
            await self._joined.wait()

    def check_joined(self) -> None:
        """Wake :meth:`join` if nothing is left."""
        if self._joined is not None and not self.waiting and not self.running:
            self._joined.set()

    # -- inspection --------------------------------------------------------------------------

    def listener_stats(self) -> dict[str, ListenerStats]:
        return {name: lane.stats() for name, lane in self.by_name.items()}

    def held(self) -> Iterator[Delivery]:
        """Pending, running, retrying, then scheduled deliveries."""
        lanes = self.by_name.values()
        yield from sorted((d for lane in lanes for d in lane.queue), key=lambda d: d.id)
        yield from sorted((pair[0] for pair in self.running.values()), key=lambda d: d.id)
        yield from self.delayed
        yield from self.scheduled

    # -- observers ---------------------------------------------------------------------------

    def add_observer(self, observer: DeliveryObserver) -> None:
        """Tell ``observer`` of every change from now on."""
        self.observers.append(observer)

    def remove_observer(self, observer: DeliveryObserver) -> None:
        """Stop telling ``observer``."""
        self.observers.remove(observer)

    def tell(self, change: str, *details: Any) -> None:
        """Call each observer's method for ``change``; an observer that raises is logged,
        never let through to the worker or the emit that caused the change."""
        for observer in self.observers:
            try:
                getattr(observer, change)(*details)
            except Exception:
                logger.exception("observer %r failed on %s", observer, change)
