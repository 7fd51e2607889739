"""``SharedBroker``: N daemons share one bus on a store of their own (Redis, PostgreSQL).

The policy is written here once; each store's :class:`~.link.Link` only runs its commands.
An emit adds one entry per matching listener (routed by the bus-wide table of listeners, so
a listener loaded on another host gets its deliveries too), all or none. A daemon reads the
queues of the listeners it loads into its local lanes (fair, capped: ``bus.lanes``), and
reports each outcome: deleted on success, parked on the store's clock for a retry, moved to
the shared failed list at the last. Entries a daemon read stay held in its name; it renews
them while it lives, and another daemon takes over those not renewed for ``claim_after``.

Everything that talks to the store runs in the tasks of :meth:`SharedBroker.run`; the hot
path (``put``, ``take``, ``succeeded``, ``failed``) records locally and wakes the writer,
and :meth:`settled` waits for the writer, so an emit is answered once the store has it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio

from ...bus.broker import Broker
from ...bus.dedupe import DedupeKeys
from ...bus.delivery import Delivery, DeliveryState, EmitterStats, iso_time
from ...bus.lane import Lane
from ...bus.lanes import LocalLanes
from ...bus.routing import Router, Slot
from ...config import BackendConfig, DaemonConfig, DeliveryConfig
from ...errors import BackendError, DeliveryError
from ...protocol.event import Placing
from ...protocol.results import BackendStatus, JournalStatus
from .codec import decode_failed, decode_payload, encode_payload
from .link import Connect, Link, masked
from .outbound import Outbound, Round, scheduled

__all__ = ("SharedBroker", "default_name")

logger = logging.getLogger("eventbus.backend")

_ID_BLOCK = 100_000  # delivery ids a daemon reserves at a time: unique bus-wide
_READ_COUNT = 500  # most entries one read takes from one stream
_PACE_SECONDS = 0.1  # a lane holds what it ended in this long, or twice its limit if more
_BEAT = 0.5  # seconds between heartbeats (and counts for `queue` on other hosts)
_COUNT_EVERY = 2.0  # seconds between the bus's counts kept for metrics and max_scheduled
_LISTED = 1000  # most deliveries of each kind `queue list` fetches
_GATE_EVERY = 0.005  # seconds between two looks at the heads of keys that deliveries wait for
_TAKEN_KEPT = 10_000  # most first answers kept for emits whose asker has not come for them
_REMOVED = "is not loaded by any daemon any more (removed by a reload)"


def _first_answer(kept: bytes, event_id: str) -> dict[str, Any]:
    """The answer kept under a dedupe key, as an emit's answer; a key an older eventbus (or
    anything else) wrote holds no answer we can read: the event and 0 deliveries stand in."""
    try:
        found = json.loads(kept)
    except ValueError:
        found = None
    if (isinstance(found, dict) and isinstance(found.get("event_id"), str)
            and isinstance(found.get("deliveries"), int)):
        return {name: found[name] for name in ("event_id", "deliveries", "due") if name in found
                and (name != "due" or isinstance(found[name], str))}
    return {"event_id": event_id, "deliveries": 0}


def default_name(socket_path: Path) -> str:
    """This daemon's consumer name when ``[backend] name`` is not set: the host and a hash
    of the socket path, stable across restarts, so a restart resumes what it held."""
    digest = hashlib.sha1(str(socket_path.absolute()).encode()).hexdigest()[:8]
    return f"{socket.gethostname()}:{digest}"


class SharedBroker(Broker):
    """Deliveries in a shared store, shared by every daemon with the same ``url`` and
    ``prefix``. The local lanes hold only what this daemon has read and not finished."""

    durable = True
    keys_shared = True
    _writes_through = True
    rerun = "on the next start of this daemon, or on another after claim_after"

    def __init__(self, backend: BackendConfig, store: str, connect: Connect, *,
                 socket_path: Path,
                 queue_size: int = DaemonConfig.queue_size,
                 keep_failed: int = DeliveryConfig.keep_failed, max_bytes: int | None = None,
                 max_scheduled: int = DaemonConfig.max_scheduled,
                 dedupe_window: float = DaemonConfig.dedupe_window,
                 max_dedupe_keys: int = DaemonConfig.max_dedupe_keys) -> None:
        """``store`` names the store as messages say it, ``connect`` opens its link. The
        bounds are the memory broker's: here they bound what this daemon holds, and the
        failed list and dedupe keys bus-wide."""
        self.store = store
        self._connect = connect
        self.lanes = LocalLanes(size=queue_size, max_bytes=max_bytes,
                                max_scheduled=max_scheduled)
        self.lanes.on_done = self._acked
        self.lanes.pace = self._ask_grant
        self._grants_wanted: dict[str, Lane] = {}  # lanes whose next start awaits the bus
        self._grant_asked: anyio.Event | None = None  # made in _grant(), inside the loop
        self._paused_at = 0.0  # time.monotonic() of the last pause or resume made here
        self._gated: dict[tuple[str, str], dict[int, Delivery]] = {}
        """Deliveries read with an order key, waiting to head it: by (listener, key), by id."""
        self._gate_asked: anyio.Event | None = None
        self.keys = DedupeKeys(dedupe_window, max_dedupe_keys)
        self._keep_failed = keep_failed
        self.url = masked(backend.url)
        self.name: str = backend.name or default_name(socket_path)
        self.claim_after = backend.claim_after
        self._config = backend
        self._link: Link | None = None
        self._window_ms = str(int(dedupe_window * 1000))
        self.available = False
        """Whether the store answers; while it does not, emits are refused."""
        self._problem = "not connected yet"
        self._refusals: dict[str, str] = {}  # writes, reads, upkeep -> what the store said
        self.loss: str | None = None
        """What the store lost while this daemon ran, until an operator acknowledges it."""
        self.errors = 0
        """How many calls to the store failed (for metrics)."""
        self._out = Outbound()
        self._fired: dict[str, float] = {}
        self._held: dict[int, tuple[str, bytes, str]] = {}  # id -> listener, entry id, reply_to
        self._local: dict[str, tuple[str, ...]] = {}  # listeners served here -> patterns
        self._routes: dict[str, tuple[str, ...]] = {}  # every listener of the bus -> patterns
        self._router: Router[str] = Router(())
        self._block: Iterator[int] = iter(())
        self._spare: range | None = None
        self._half = 0  # the id half way through the block: time to reserve the next
        self._draining = False
        self._work: anyio.Event | None = None  # made in run(), inside the loop
        self._woken = False  # whether _work is set already
        self._sent: anyio.Event | None = None  # set after the writer's next round trip
        self._capacity: anyio.Event | None = None  # set when a call ends: lanes have room
        self._view: EmitterStats | None = None
        self._scheduled_sent = 0  # deliveries for later this daemon's writer sent, ever
        self._scheduled_counted = 0  # how many of those the bus's last count had seen
        self._sending = anyio.Lock()  # held by a round trip of the writer, and by a count
        self._listed: list[Delivery] = []
        self._taken: dict[str, dict[str, Any]] = {}  # key -> first answer, found by the writer

    # -- listeners ---------------------------------------------------------------------------

    def serve(self, slots: Sequence[Slot], *, reason: str) -> int:
        """Read the streams of these listeners from now on. A listener no longer loaded here
        hands what this daemon read of it back to the bus; once no daemon loads it, what
        waits for it fails with ``reason`` (the writer does that, so 0 is returned)."""
        served = {slot.name for slot in slots}
        lanes = self.lanes
        for name in [name for name in lanes.by_name if name not in served]:
            lane = lanes.by_name.pop(name)
            lane.retired = True
            for delivery in lanes.withdraw(lane, scheduled=False):
                held = self._held.pop(delivery.id, None)
                if held is not None:
                    self._out.handbacks.append(held[:2])
            self._out.leaves.add(name)
        lanes.serve(slots)  # lanes for the new, the kept get their slot
        self._out.leaves -= served
        self._local = {slot.name: tuple(sorted(slot.listener.event_ids)) for slot in slots}
        self._out.joins = set(self._local)
        self._route()
        self._wake()
        return 0

    def serves(self, name: str) -> bool:
        return name in self._routes or name in self._local

    def _route(self) -> None:
        routes = {**self._routes, **self._local}
        self._router = Router((patterns, name) for name, patterns in sorted(routes.items()))

    def routes_changed(self, routes: dict[str, tuple[str, ...]]) -> None:
        """The bus's listeners, as the store has them now."""
        self._routes = routes
        self._route()

    def targets(self, event_id: str, slots: Sequence[Slot]) -> int:
        return len(self._router.get(event_id))

    # -- emitting ----------------------------------------------------------------------------

    def has_room(self, needed: int, size: int = 0, *, later: bool = False) -> bool:
        if later:  # the bus's count as last read, what this daemon sent since, and unsent
            counted = self._view.scheduled if self._view else 0
            since = self._scheduled_sent - self._scheduled_counted
            return (counted + since + self._out.scheduled_unsent + needed
                    <= self.max_scheduled)
        return self._out.unsent + needed <= self.size

    def put(self, event_id: str, slots: Sequence[Slot], args: tuple[Any, ...],
            kwargs: dict[str, Any], size: int = 0, due_at: float | None = None,
            key: str | None = None, ordering: Placing | None = None) -> Sequence[Delivery]:
        if not self.available:
            raise self.unavailable()
        names = self._router.get(event_id)
        now = time.time()
        made = [Delivery(self._next_id(), event_id, args, kwargs, name, 0.0, size, now)
                for name in names]
        if ordering is not None:
            for delivery in made:
                delivery.priority, delivery.order_key = ordering
        if due_at is not None:
            for delivery in made:
                delivery.state = DeliveryState.SCHEDULED
                delivery.due_at = due_at
        answer = None
        if key is not None:  # what a repeat of it gets, from the store, on any daemon
            answer = {"event_id": event_id, "deliveries": len(made)}
            if due_at is not None:
                answer["due"] = iso_time(due_at)
        self._out.emit(key, made, None if due_at is None else int(due_at * 1000), answer)
        self._wake()
        if self.lanes.observers:
            self.lanes.tell("emitted", event_id, made)
        return made

    def answer_for(self, key: str) -> dict[str, Any] | None:
        answer = self.keys.answer_for(key)
        if answer is not None:  # answered here, not by the emit script: count it bus-wide
            self._out.duplicate()
            self._wake()
        return answer

    def remember(self, key: str, answer: dict[str, Any]) -> None:
        self.keys.remember(key, answer)

    def claimed_elsewhere(self, key: str) -> dict[str, Any] | None:
        return self._taken.pop(key, None)

    def unavailable(self) -> BackendError:
        """The error for a request that needs the store while it does not answer."""
        return BackendError(self.url, f"{self.store} does not answer ({self._problem}), so "
                            "nothing was accepted", "the daemon reconnects by itself: emit "
                            f"again once {self.store} is back (`eventbus status` shows it)")

    def _next_id(self) -> int:
        for delivery_id in self._block:
            if delivery_id == self._half and self._spare is None:
                self._wake()  # the writer reserves the next block meanwhile
            return delivery_id
        if self._spare is None:
            raise BackendError(self.url, "no delivery ids are reserved yet",
                               "emit again in a moment")
        self._use_block(self._spare)
        return next(self._block)

    def _use_block(self, block: range) -> None:
        self._block, self._spare, self._half = iter(block), None, block[len(block) // 2]

    def follow(self, deliveries: Sequence[Delivery]) -> None:
        self._out.followed.update(delivery.id for delivery in deliveries)

    def note_fire(self, name: str, when: float) -> None:
        self._fired[name] = self._out.fired[name] = when
        self._wake()

    def fires(self) -> dict[str, float]:
        return dict(self._fired)

    # -- workers -----------------------------------------------------------------------------

    def _take_in(self, stream: str, entry_id: bytes, data: bytes) -> None:
        """An entry read from ``stream`` joins the lane of its listener."""
        assert self._link is not None, "entries are read once the link is open"
        name = self._link.listener_of(stream)
        delivery, reply_to = decode_payload(data, name)
        lane = self.lanes.by_name.get(name)
        if lane is None or self._draining or delivery.id in self._held:
            if delivery.id not in self._held:
                self._out.handbacks.append((stream, entry_id))
            return
        self._held[delivery.id] = (stream, entry_id, reply_to)
        delivery.queued_at = time.monotonic()
        if delivery.order_key is not None:  # it waits until it heads its key, bus-wide
            self._gated.setdefault((name, delivery.order_key), {})[delivery.id] = delivery
            if self._gate_asked is not None:
                self._gate_asked.set()
            return
        self.lanes.add(delivery, lane)

    async def _gate(self, link: Link) -> None:
        """Let deliveries with an order key into their lanes one at a time per key, bus-wide:
        each when it heads its key in the store (the ids of the key's unfinished
        deliveries in emit order, kept by the scripts); asked again every few ms while any
        waits, as the head may end on another daemon."""
        while True:
            if not self._gated:
                asked = self._gate_asked = anyio.Event()
                await asked.wait()
                continue
            keys = list(self._gated)
            try:
                heads = await link.heads(keys)
            except link.errors:
                await anyio.sleep(0.2)  # the reads say so, and reconnect
                continue
            for (name, key), head in zip(keys, heads, strict=True):
                waiting = self._gated.get((name, key))
                if not waiting:
                    continue
                # No record: the key was reset (a purge, a lost store): the oldest goes first,
                # and the lane keeps the rest in order on this daemon.
                delivery = waiting.pop(min(waiting) if head is None else head, None)
                if not waiting:
                    del self._gated[(name, key)]
                if delivery is None:
                    continue
                if (lane := self.lanes.by_name.get(name)) is not None and not self._draining:
                    self.lanes.add(delivery, lane)
                elif (held := self._held.pop(delivery.id, None)) is not None:
                    self._out.handbacks.append(held[:2])  # not served here any more
                    self._wake()
            await anyio.sleep(_GATE_EVERY)

    def _acked(self, deliveries: Sequence[Delivery]) -> None:
        """These deliveries succeeded: delete them in the store (the lanes' ``on_done``)."""
        for delivery in deliveries:
            held = self._held.pop(delivery.id, None)
            if held is not None:
                self._out.acks.append((held[0], held[1], delivery, held[2]))
        self._wake()

    def failed(self, delivery: Delivery, error: str, traceback: str | None, *,
               retry_in: float | None) -> None:
        lane = self.lanes.release(delivery)
        delivery.error, delivery.traceback = error, traceback
        name, entry_id, reply_to = self._held.pop(delivery.id, (delivery.listener, b"", ""))
        lane.failed += 1  # local only, for the reader's pace: the bus counts in the store
        if retry_in is not None and not lane.retired:
            delivery.state = DeliveryState.RETRYING
            self._out.parks.append((name, entry_id, delivery, retry_in, reply_to))
            lane.queue.forget(delivery)  # it holds its key in the store; it may come back anywhere
        else:
            delivery.state = DeliveryState.FAILED
            delivery.failed_at = time.time()
            self._out.fails.append((name, entry_id, delivery, reply_to))
            self.lanes.ended(delivery, lane)
        self._wake()
        if self.lanes.observers:
            self.lanes.tell("finished", delivery)
        self.lanes.check_joined()

    def stop_taking(self) -> None:
        """Shutting down: read nothing more, and hand back what was read but not started."""
        self._draining = True
        self._listed = []  # from here on deliveries() is what this daemon still runs
        gated = [d for waiting in self._gated.values() for d in waiting.values()]
        self._gated.clear()
        for lane in self.lanes.by_name.values():
            for delivery in [*self.lanes.withdraw(lane, scheduled=False), *gated]:
                held = self._held.pop(delivery.id, None)
                if held is not None:
                    self._out.handbacks.append(held[:2])
            gated = []
        self._wake()

    def _wake(self) -> None:
        # Once a round: this runs for every emit and every outcome.
        if not self._woken and self._work is not None:
            self._woken = True
            self._work.set()
        if (capacity := self._capacity) is not None:
            self._capacity = None
            capacity.set()

    # -- inspection --------------------------------------------------------------------------

    def stats(self) -> EmitterStats:
        """The bus's counters as last read (every 2 s, and before each inspection); before
        the first read, what this daemon holds."""
        if self._view is not None:
            return self._view
        lanes = self.lanes
        return EmitterStats(pending=lanes.waiting, running=len(lanes.running), retrying=0,
                            succeeded=0, failed=0, unrouted=0, listeners=lanes.listener_stats())

    def deliveries(self, state: DeliveryState | None = None) -> Iterator[Delivery]:
        running = [entry[0] for entry in self.lanes.running.values()]
        seen = {delivery.id for delivery in running}
        for delivery in running + [d for d in self._listed if d.id not in seen]:
            if state is None or delivery.state is state:
                yield delivery

    @property
    def failed_list(self) -> list[Delivery]:
        return sorted((d for d in self._listed if d.state is DeliveryState.FAILED),
                      key=lambda delivery: delivery.failed_at or 0.0)

    async def refresh(self, *, listing: bool = False) -> None:
        """Fetch the bus-wide counters (and with ``listing`` the deliveries) from the store."""
        with self._asking() as link:
            await self._count(link)
            asked = time.monotonic()
            self._apply_pauses(await link.read_pauses(), asked)
            if listing:
                self._listed = await link.listing(sorted({*self._routes, *self._local}),
                                                  _LISTED)

    @contextlib.contextmanager
    def _asking(self) -> Iterator[Link]:
        """The link, for a client's request: what the store raises becomes a BackendError that
        says what went wrong (never an internal error)."""
        link = self._ready_link()
        try:
            yield link
        except link.errors as exc:
            if not isinstance(exc, link.lost_errors):  # health says so until one succeeds
                self._refusals["commands"] = str(exc)
            raise self._refusal(exc, sent=False) from None
        self._refusals.pop("commands", None)

    def _refusal(self, exc: BaseException, *, sent: bool) -> BackendError:
        """The error for a request the store did not take (``sent``: one that carried
        changes)."""
        text, store = str(exc), self.store
        found = self._link.foreign(exc) if self._link is not None else None
        if found is not None:
            outcome = "nothing of this request was stored" if sent else f"{store} refused it"
            return BackendError(self.url, f"foreign data under the prefix "
                                f"{self._config.prefix}: {found}, so {outcome}",
                                "remove or rename it, or give this bus a [backend] prefix of "
                                "its own")
        if not sent:
            return BackendError(self.url, f"{store} did not answer the request ({text})",
                                f"try again once {store} answers (`eventbus status` shows it)")
        return BackendError(self.url, f"{store} did not take the request ({text}); it was not "
                            "acknowledged: it may or may not take effect")

    async def _count(self, link: Link) -> None:
        async with self._sending:  # no round lands during the read: it is counted, or not yet
            sent = self._scheduled_sent
            view = await link.stats(sorted({*self._routes, *self._local}), self._out.unsent)
        if view is None:  # the count from before stays, to say what may be lost
            self._emptied("the bus's keys were gone")
            return
        self._view = view
        self._scheduled_counted = max(self._scheduled_counted, sent)

    async def pause(self, name: str, until: float | None = None) -> None:
        with self._asking() as link:
            await link.set_pause(name, True, until)
        self._paused_at = time.monotonic()
        self.lanes.pause(name, until)

    async def resume(self, name: str) -> None:
        with self._asking() as link:
            await link.set_pause(name, False)
        self._paused_at = time.monotonic()
        self.lanes.resume(name)

    def _apply_pauses(self, pauses: dict[str, float | None], asked: float) -> None:
        """The bus's pauses as the store told them, unless asked before a change made here (a
        beat in flight then may not know of it yet)."""
        if asked > self._paused_at:
            self.lanes.set_pauses(pauses)

    def known_listeners(self) -> set[str]:
        return {*self._routes, *self._local}

    async def retry(self, delivery_ids: Iterable[int] | None) -> list[Delivery]:
        with self._asking() as link:
            return await self._retry(link, delivery_ids)

    async def _retry(self, link: Link, delivery_ids: Iterable[int] | None) -> list[Delivery]:
        chosen = []
        for delivery_id, record in await link.failed_records(delivery_ids):
            if record is None:
                raise DeliveryError(delivery_id, "is not in the failed list (`eventbus queue "
                                    "list --state failed` lists it)", missing=True)
            delivery = decode_failed(record)
            delivery.attempts, delivery.error, delivery.traceback = 0, None, None
            delivery.state, delivery.failed_at = DeliveryState.PENDING, None
            chosen.append(delivery)
        problem = await link.requeue([(d.id, d.listener, encode_payload(d), d.order_key or "",
                                       link.stream_of(d.listener, d.priority)) for d in chosen])
        if problem is not None:
            kind, delivery_id = problem
            raise DeliveryError(delivery_id, "left the failed list meanwhile"
                                if kind == "missing" else "its listener is not loaded by any "
                                "daemon, so it cannot run; load it, then retry",
                                missing=kind == "missing")
        if chosen and self.lanes.observers:
            self.lanes.tell("requeued", chosen)
        return chosen

    async def purge(self, state: DeliveryState) -> int:
        with self._asking() as link:
            return await self._purge(link, state)

    async def _purge(self, link: Link, state: DeliveryState) -> int:
        if state is DeliveryState.FAILED:
            return await link.purge_failed()
        if state not in (DeliveryState.PENDING, DeliveryState.SCHEDULED):
            raise ValueError(f"purge takes failed, pending or scheduled, not {state.value}")
        mine = []
        if state is DeliveryState.PENDING:
            gated = [d for waiting in self._gated.values() for d in waiting.values()]
            self._gated.clear()  # read, waiting for the head of their key: pending too
            for lane in self.lanes.by_name.values():
                mine += [self._held.pop(d.id)[:2]
                         for d in self.lanes.withdraw(lane, scheduled=False) if d.id in self._held]
            mine += [self._held.pop(d.id)[:2] for d in gated if d.id in self._held]
        dropped = await link.purge_waiting(state.value, sorted({*self._routes, *self._local}),
                                           mine)
        if dropped:
            logger.warning("purged %d %s deliveries", dropped, state.value)
        return dropped

    async def join(self) -> None:
        if self._draining:  # this daemon's work only: what runs, and its outcomes sent
            while self.lanes.running or self._out.outcomes:
                self._sent = self._sent or anyio.Event()
                await self._sent.wait()
            return
        while True:  # the whole bus: every daemon's work
            await self.refresh()
            view = self._view
            if view is not None and not (view.pending or view.running or view.retrying
                                         or self._out.unsent):
                return
            await anyio.sleep(0.05)

    # -- life --------------------------------------------------------------------------------

    def _ready_link(self) -> Link:
        if self._link is None or not self.available:
            raise self.unavailable()
        return self._link

    async def open(self) -> None:
        """Connect, check the server and this daemon's name, join the listeners, and take
        back what this daemon held when it last stopped."""
        self._link = await self._connect(self._config, self.name)
        await self._link.mark()
        self._fired = await self._link.fires()
        self.lanes.set_pauses(await self._link.read_pauses())  # before anything is read
        self._use_block(await self._link.reserve_ids(_ID_BLOCK))
        # A listener this daemon ran before it stopped, and does not load now, leaves too.
        gone = await self._link.hosted_here(set(await self._link.routes()) - set(self._local))
        self._routes = await self._link.join(self._local, set(self._local), gone,
                                             keep=self._keep_failed, reason=_REMOVED)
        self._out.joins.clear()
        self._route()
        self.available = True
        for name in self._local:
            for stream, entry_id, data in await self._link.own_pending(name):
                self._take_in(stream, entry_id, data)
        if self._held:
            logger.info("resumed %d deliveries this daemon (%s) held when it stopped",
                        len(self._held), self.name)

    async def settled(self) -> None:
        """Return once every emit this task put is in the store; raise the error of a batch
        that held one of them and failed (it was not acknowledged)."""
        await self._out.settled()

    async def run(self) -> None:
        self._work = anyio.Event()
        link = self._ready_link()
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._write, link)
                group.start_soon(self._read, link)
                group.start_soon(self._keep_up, link)
                group.start_soon(self.lanes.run)  # paced lanes, pauses that end
                group.start_soon(self._grant, link)
                group.start_soon(self._gate, link)
                group.start_soon(link.move_due)
                group.start_soon(link.views.listen, self, link.routes, self._wake)
        finally:
            with anyio.CancelScope(shield=True):
                await link.close()

    def _ask_grant(self, lane: Lane) -> None:
        """The lanes' ``pace``: a listener with a rate started a call here; ask the bus when
        its next may start (a rate holds bus-wide, not per daemon)."""
        self._grants_wanted[lane.slot.name] = lane
        if self._grant_asked is not None:
            self._grant_asked.set()

    async def _grant(self, link: Link) -> None:
        failing = False
        while True:
            if not self._grants_wanted:
                asked = self._grant_asked = anyio.Event()
                await asked.wait()
                continue
            name, lane = next(iter(self._grants_wanted.items()))
            try:
                wait = await link.pace(name, 1.0 / (lane.slot.rate or math.inf))
            except link.errors as exc:
                if not failing:
                    logger.warning("cannot have the store grant the next start of %s (its rate): "
                                   "%s; it waits and asks again", name, exc)
                failing = True
                await anyio.sleep(0.5)
                continue
            failing = False
            if self._grants_wanted.get(name) is lane:
                del self._grants_wanted[name]
            self.lanes.grant(lane, time.monotonic() + wait)

    def close(self) -> None:
        """The connections close as :meth:`run` ends."""

    # -- the tasks -----------------------------------------------------------------------------

    async def _write(self, link: Link) -> None:
        """Send what the hot path recorded, one pipeline at a time."""
        assert self._work is not None
        pause = 0.05
        while True:
            await self._work.wait()
            self._work, self._woken = anyio.Event(), False
            taken = self._out.take()
            try:
                await self._reserve_ids(link)
                if taken.joins or taken.leaves or taken.handbacks:
                    self._routes = await link.join(self._local, taken.joins, taken.leaves,
                                                   taken.handbacks, keep=self._keep_failed,
                                                   reason=_REMOVED)
                    self._route()
                if taken.followed:  # who waits must hear the outcome: listen first
                    await link.views.tail_ready()
                async with self._sending:
                    firsts = await link.send(taken.emits, taken.followed, taken.acks,
                                             taken.parks, taken.fails, taken.fired,
                                             self._window_ms, self._keep_failed,
                                             taken.duplicates, self.keys.max_keys)
                    self._scheduled_sent += scheduled(taken)
                    self._note_taken(taken, firsts)
            except link.errors as exc:
                self._out.give_back(taken, self._refusal(exc, sent=True))
                self._lost(exc, "writes")
                await anyio.sleep(pause)
                pause = min(pause * 2, 2.0)
                self._wake()
            else:
                pause = 0.05
                if taken.carries:
                    self._back("writes")
            finally:
                if self._sent is not None:
                    self._sent.set()
                    self._sent = None
                self._out.finish(taken)
                if self.lanes.waiting_for_room:
                    self.lanes.wake_all()

    def _note_taken(self, taken: Round, firsts: dict[int, bytes]) -> None:
        """Keep, for :meth:`claimed_elsewhere`, the first answers of the emits whose keys
        another emit had taken (on this daemon or another)."""
        for index, first in firsts.items():
            key, made, due, answer = taken.emits[index]
            assert key is not None
            assert answer is not None
            self._taken[key] = _first_answer(first, answer["event_id"])
            if due is not None:  # sent, but not scheduled: not in the bus's count to come
                self._scheduled_sent -= len(made)
        while len(self._taken) > _TAKEN_KEPT:  # answers nobody asked for (the client left)
            del self._taken[next(iter(self._taken))]

    async def _reserve_ids(self, link: Link) -> None:
        if self._spare is None and not self._block_plenty():
            self._spare = await link.reserve_ids(_ID_BLOCK)

    def _block_plenty(self) -> bool:
        peek = getattr(self._block, "__length_hint__", lambda: 0)()
        return bool(peek > _ID_BLOCK // 2)

    async def _read(self, link: Link) -> None:
        """Read the streams of the listeners served here into their lanes, while they have
        room: a lane holds what it ran in the last 0.1 s, or twice what it may run at once if
        more, so that a fast listener is read in big batches while the daemons sharing a
        slow one share its work."""
        pace: dict[str, int] = {}  # calls each lane ended in the last _PACE_SECONDS
        ended: dict[str, int] = {}
        sampled = 0.0
        while not self._draining:
            if time.monotonic() - sampled >= _PACE_SECONDS:
                sampled = time.monotonic()
                for name, lane in self.lanes.by_name.items():
                    now_ended = lane.succeeded + lane.failed + lane.retried
                    pace[name] = now_ended - ended.get(name, now_ended)
                    ended[name] = now_ended
            room = self.lanes.size - self.lanes.waiting - sum(map(len, self._gated.values()))
            wanted = {name: max(2 * lane.slot.limit, pace.get(name, 0)) - len(lane.queue)
                      - lane.running for name, lane in self.lanes.by_name.items()
                      if not lane.retired}
            names = [name for name, want in wanted.items() if want > 0]
            capacity = self._capacity = anyio.Event()  # set by any call that ends from now
            if room <= 0 or not names or not self.available:
                with anyio.move_on_after(0.25):
                    await capacity.wait()
                continue
            count = max(1, min(_READ_COUNT, room // len(names), max(wanted.values())))
            # With a lane full, a blocking read would keep it waiting once it drains.
            block = len(names) == len(wanted)
            try:
                read = await link.read(names, count, block=block)
                if link.regrouped:
                    link.regrouped = False
                    if any(name in self._local for name in names):
                        self._emptied("a stream or group of a listener it reads was gone")
                for stream, entry_id, data in read:
                    self._take_in(stream, entry_id, data)
                self._back("reads")
                if not read and not block:
                    with anyio.move_on_after(0.05):
                        await capacity.wait()
            except link.errors as exc:
                self._lost(exc, "reads")
                await anyio.sleep(0.2)

    async def _keep_up(self, link: Link) -> None:
        """Heartbeat, renew what this daemon holds, take over what a dead one held, and
        keep the bus-wide counts and routes fresh."""
        renew_every, sweep_every = self.claim_after / 3, min(1.0, self.claim_after / 3)
        renewed = swept = counted = 0.0
        renewed_entries: set[bytes] = set()  # what the last renewal covered
        while True:
            try:
                running = {name: lane.running for name, lane in self.lanes.by_name.items()}
                asked = time.monotonic()
                routes, fires, present = await link.beat(running, len(self._held))
                if not present:
                    self._emptied("the bus's keys were gone")
                self._apply_pauses(link.pauses, asked)
                if time.monotonic() - renewed >= renew_every:
                    # Frozen or cut off past claim_after, what ended here since the last
                    # renewal may have been taken over as well (an upper bound: so it says).
                    cut_off = bool(renewed) and time.monotonic() - renewed > self.claim_after
                    renewed = time.monotonic()
                    holding = [held[:2] for held in self._held.values()]
                    lost = await link.renew(holding)
                    now_held = {entry_id for _, entry_id in holding}
                    self._log_lost(lost, len(renewed_entries - now_held) if cut_off else 0)
                    renewed_entries = now_held
                if time.monotonic() - swept >= sweep_every and not self._draining:
                    swept = time.monotonic()
                    for stream, taken in (await link.take_over(list(self.lanes.by_name),
                                                               self.claim_after)).items():
                        for entry_id, data in taken:
                            self._take_in(stream, entry_id, data)
                        if taken:
                            logger.warning("took over %d deliveries of %s that a daemon "
                                           "stopped renewing for %gs (claim_after)",
                                           len(taken), link.listener_of(stream), self.claim_after)
                if missing := set(self._local) - set(routes):  # the store lost them (flushed?)
                    self._out.joins |= missing
                    self._wake()
                self.routes_changed(routes)
                for name, when in fires.items():  # fired on any daemon
                    self._fired[name] = max(when, self._fired.get(name, when))
                if time.monotonic() - counted >= _COUNT_EVERY:  # commands count afresh anyway
                    counted = time.monotonic()
                    await self._count(link)
                self._back("upkeep")
            except link.errors as exc:
                self._lost(exc, "upkeep")
            await anyio.sleep(_BEAT)

    def _log_lost(self, lost: set[bytes], ended: int) -> None:
        """Entries that were no longer this daemon's when it renewed them (it was frozen,
        or cut off, past claim_after): another daemon took them over. Those not started here
        are left to it; those running here, and the ``ended`` here while it was cut off, may
        run on both, and the log counts them."""
        gone = {delivery_id for delivery_id, held in self._held.items() if held[1] in lost}
        if not gone and not ended:
            return
        lanes = self.lanes
        for lane in lanes.by_name.values():
            if any(delivery.id in gone for delivery in lane.queue):
                for delivery in lanes.withdraw(lane, scheduled=False):
                    if delivery.id in gone:
                        del self._held[delivery.id]
                    else:
                        lanes.add(delivery, lane)
        running = sum(1 for entry in lanes.running.values() if entry[0].id in gone)
        logger.warning("deliveries this daemon held were taken over by another daemon (it did "
                       "not renew them within claim_after): %d that were running here, or "
                       "ended here while it was cut off, may run on both; %d not started here "
                       "are left to it", running + ended, len(gone) - running)

    def _emptied(self, what: str) -> None:
        """The store lost the bus's data (restarted without persistence, flushed, evicted):
        say so loudly, stay unhealthy until an operator acknowledges it, and hand out ids
        from a block reserved afresh."""
        if self.loss is not None:  # told already: the count it names is the one from before
            return
        view = self._view
        known = ("none were counted yet" if view is None else
                 f"{view.pending} were pending, {view.retrying} retrying, {view.scheduled} "
                 f"scheduled and {view.failed_list} in the failed list at the last count")
        self.loss = (f"{self.store} at {self.url} lost this bus's data ({what}: it restarted "
                     f"without persistence, or was flushed): deliveries may have been lost; "
                     f"{known}")
        logger.error("%s. Health stays unhealthy until an operator acknowledges it "
                     "(`eventbus status --acknowledge`)", self.loss)
        self._block, self._spare = iter(()), None  # the writer reserves above the clock
        self._wake()

    def acknowledge(self) -> list[str]:
        loss, self.loss = self.loss, None
        return [] if loss is None else [loss]

    def _lost(self, exc: BaseException, work: str) -> None:
        """A command of the daemon's ``work`` (writes, reads, upkeep) failed."""
        self.errors += 1
        if self._link is not None and not isinstance(exc, self._link.lost_errors):
            if self._refusals.get(work) != str(exc):  # said once while it lasts
                logger.error("%s at %s refused a command of this daemon's %s: %s",
                             self.store, self.url, work, exc)
            self._refusals[work] = str(exc)
            self._answers()  # it refused: it answers, so emits go to it (and hear why)
            return
        if self.available:
            logger.error("lost %s at %s (%s): emits are refused with backend_unavailable "
                         "until it is back; reconnecting", self.store, self.url, exc)
        self.available = False
        self._problem = str(exc) or type(exc).__name__

    def _back(self, work: str) -> None:
        if self._refusals.pop(work, None) is not None:
            logger.info("%s at %s takes this daemon's %s again", self.store, self.url, work)
        self._answers()

    def _answers(self) -> None:
        if not self.available and self._link is not None:
            logger.info("%s at %s is back: emits are accepted again", self.store, self.url)
            self.available = True

    def on_record(self, change: str, event: str | None, deliveries: list[Delivery]) -> None:
        """Another daemon's change, for this daemon's live views (tail, emit --wait)."""
        if change == "emitted":
            self._tell_views(change, event, deliveries)
        elif change in ("requeued", "removed"):
            self._tell_views(change, deliveries)
        else:
            for delivery in deliveries:
                self._tell_views(change, delivery)

    def _tell_views(self, change: str, *details: Any) -> None:
        """As the memory broker's ``_tell``, leaving out the views that publish: a record
        from another daemon goes back to no daemon."""
        views = self._link.views if self._link is not None else None
        for observer in self.lanes.observers:
            if observer is views:
                continue
            try:
                getattr(observer, change)(*details)
            except Exception:
                logger.exception("observer %r failed on %s from another daemon", observer,
                                 change)

    def wants_records(self) -> bool:
        """Whether a live view here listens (so the other daemons' records are wanted)."""
        views = self._link.views if self._link is not None else None
        return any(observer is not views for observer in self.lanes.observers)

    def describe(self) -> str:
        return f"{self.store} {self.url} as {self.name}"

    def status(self) -> tuple[JournalStatus | None, BackendStatus | None]:
        return None, self.backend_status()

    def problems(self) -> list[str]:
        found = [] if self.available else [f"emits are refused: {self.unavailable()}"]
        found += [f"{self.store} refuses this daemon's {work}: {text}"
                  for work, text in sorted(self._refusals.items())]
        return found if self.loss is None else [*found, self.loss]

    def link_state(self) -> tuple[int, bool] | None:
        return self.errors, self.available

    def backend_status(self) -> BackendStatus:
        """The ``status`` document's ``backend``."""
        link = self._link
        return BackendStatus(
            url=self.url, name=self.name, prefix=self._config.prefix, available=self.available,
            problem=None if self.available else self._problem,
            store=self.store, version=link.version if link else None,
            daemons=link.daemons if link else [], claim_after=self.claim_after)

