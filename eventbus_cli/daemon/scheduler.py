"""``Scheduler``: fires the daemon's ``cron`` and ``every`` schedules, with one timer.

The schedules wait in a heap by their next fire; the scheduler sleeps until the nearest, so
a thousand idle schedules cost one timer. A fire emits the schedule's event as any emit does
(routed and checked then); its outcome is kept for ``schedule list``, and the broker keeps
when it fired (the journal, across restarts), so that a fire missed while no daemon ran is
caught up once at start (``catch_up = "once"``) or skipped.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Sequence

import anyio

from ..bus.delivery import Delivery, iso_time
from ..bus.emitter import SimpleEventEmitter
from ..bus.schedules import Schedule, cron, every
from ..config import Config
from ..errors import BadArgumentsError, ConfigError, ErrorCode, EventbusError, ScheduleError
from ..plural import counted
from ..protocol.results import ScheduleInfo

__all__ = ("RETRY_SECONDS", "Scheduler", "UnknownScheduleError", "config_schedules")

logger = logging.getLogger("eventbus.schedule")

RETRY_SECONDS = 5.0
"""How soon a fire the store refused (Redis away, the journal failing) is sent again."""


class UnknownScheduleError(EventbusError, LookupError):
    """``schedule run`` named no schedule that is loaded."""

    code = ErrorCode.NOT_FOUND

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        self.known = list(known)
        listed = ", ".join(self.known) or "none is loaded"
        super().__init__(f"no schedule is named {name!r}; the schedules: {listed}")

    def error_fields(self) -> dict[str, object]:
        return {"schedules": self.known}


class _Entry:
    __slots__ = ("due", "key_at", "last", "outcome", "schedule")

    def __init__(self, schedule: Schedule, due: float, last: float | None) -> None:
        self.schedule = schedule
        self.due = due
        self.key_at: float | None = None
        """The due time this fire stands for, when not ``due``: a fire caught up at start,
        or sent again after a refusal (so every daemon keys it alike)."""
        self.last = last
        self.outcome: str | None = None


class _Fire:
    """One fire put into the broker, waiting to be known stored."""

    __slots__ = ("due", "entry", "key", "made")

    def __init__(self, entry: _Entry, due: float, key: str | None,
                 made: Sequence[Delivery]) -> None:
        self.entry, self.due, self.key, self.made = entry, due, key, made


class Scheduler:
    """The loaded schedules, each with its next fire, last fire and the last outcome."""

    def __init__(self, emitter: SimpleEventEmitter, *,
                 clock: Callable[[], float] = time.time,
                 on_fire: Callable[[str, str, str, int], None] | None = None) -> None:
        self._emitter = emitter
        self._broker = emitter.broker
        self._clock = clock
        self._on_fire = on_fire
        """Told (name, event id, outcome, deliveries queued) of every fire: tail shows it,
        metrics count it."""
        self._entries: dict[str, _Entry] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._count = 0
        self._wakeup: anyio.Event | None = None  # made in run(), inside the loop
        self._started = False

    def replace(self, schedules: Sequence[Schedule]) -> None:
        """Serve these schedules from now on (at start, and on every reload). One kept by
        name keeps its last fire; at start, one that missed a fire while no daemon ran fires
        now if its ``catch_up`` is "once"."""
        now = self._clock()
        fired = self._broker.fires()
        entries: dict[str, _Entry] = {}
        for schedule in schedules:
            assert schedule.name is not None  # the loader names every schedule
            kept = self._entries.get(schedule.name)
            last = kept.last if kept is not None else fired.get(schedule.name)
            due = schedule.next_after(now)
            entry = entries[schedule.name] = _Entry(schedule, due, last)
            if kept is None and not self._started and last is not None:
                missed = schedule.next_after(last)
                if missed <= now and schedule.catch_up == "once":
                    entry.due, entry.key_at = now, missed
                    logger.info("schedule %s missed a fire while no daemon ran; firing it "
                                "once now (catch_up = \"once\")", schedule.name)
            if kept is not None:
                entry.outcome = kept.outcome
        self._entries = entries
        self._started = True
        self._heap = []
        for name, entry in entries.items():
            self._push(name, entry)
        if self._wakeup is not None:
            self._wakeup.set()

    def _push(self, name: str, entry: _Entry) -> None:
        self._count += 1
        heapq.heappush(self._heap, (entry.due, self._count, name))

    async def run(self) -> None:
        """Fire each schedule when it is due; until cancelled. A fire the store refused is
        sent again every :data:`RETRY_SECONDS` until its schedule's next due time, then
        logged as lost."""
        while True:
            now = self._clock()
            fires = []
            while self._heap and self._heap[0][0] <= now:
                due, _, name = heapq.heappop(self._heap)
                entry = self._entries.get(name)
                if entry is None or entry.due != due:
                    continue  # replaced by a reload, or fired by hand: a stale timer
                stands_for = entry.key_at if entry.key_at is not None else due
                entry.key_at = None
                entry.due = entry.schedule.next_after(max(due, now))
                self._push(name, entry)  # a refusal below times a retry before it
                fire = self._put(entry, stands_for, f"fire:{name}:{int(stands_for * 1000)}",
                                 again=True)
                if fire is not None:
                    fires.append(fire)
            if fires:
                await self._settle(fires)
                continue
            self._wakeup = anyio.Event()
            wait = self._heap[0][0] - self._clock() if self._heap else None
            with anyio.move_on_after(wait):
                await self._wakeup.wait()

    def check_names(self, *groups: Sequence[Schedule]) -> list[Schedule]:
        """The schedules of every group together; :class:`ScheduleError` if a name is in
        two of them (a listener file's and eventbus.toml's, say)."""
        seen: set[str | None] = set()
        for schedule in (schedule for group in groups for schedule in group):
            if schedule.name in seen:
                raise ScheduleError(f"two schedules are named {schedule.name!r} (in the "
                                    "listener files and in eventbus.toml): rename one")
            seen.add(schedule.name)
        return [schedule for group in groups for schedule in group]

    async def run_now(self, name: str) -> ScheduleInfo:
        """Fire the schedule ``name`` now, as ``schedule run`` does; its timer is unchanged."""
        entry = self._entries.get(name)
        if entry is None:
            raise UnknownScheduleError(name, sorted(self._entries))
        now = self._clock()
        fire = self._put(entry, now, None, again=False)
        if fire is not None:
            await self._settle([fire], again=False)
        return self._listed(name, entry)

    def _put(self, entry: _Entry, due: float, key: str | None, *,
             again: bool) -> _Fire | None:
        """Emit the schedule's event; ``key`` makes it one fire bus-wide where daemons
        share a broker and each fires the same schedule at the same due time. None if
        refused at once (the outcome says why)."""
        schedule = entry.schedule
        try:
            made = self._emitter.put(schedule.event_id, schedule.args, schedule.kwargs, key=key)
        except EventbusError as exc:  # bad arguments would be refused on every try
            retried = again and not isinstance(exc, BadArgumentsError)
            self._refused(entry, due, exc, again=retried)
            return None
        # Kept in the same write as the deliveries: a journal commits both or neither, so a
        # fire cut by kill -9 is caught up at the next start, or has its deliveries kept.
        entry.last = self._clock()
        assert schedule.name is not None
        self._broker.note_fire(schedule.name, entry.last)
        return _Fire(entry, due, key, made)

    async def _settle(self, fires: Sequence[_Fire], *, again: bool = True) -> None:
        """Wait until the store has these fires; keep each one's outcome."""
        broker = self._broker
        try:
            await broker.settled()
        except EventbusError as exc:
            for fire in fires:
                self._refused(fire.entry, fire.due, exc, again=again)
            return
        for fire in fires:
            entry, schedule = fire.entry, fire.entry.schedule
            assert schedule.name is not None
            made = fire.made
            if fire.key is not None and broker.claimed_elsewhere(fire.key) is not None:
                entry.outcome, made = "fired by another daemon", ()
            elif made:
                entry.outcome = f"emitted: {counted(len(made), 'delivery')} queued"
            else:
                entry.outcome = "emitted: unrouted (no listener matches)"
            logger.info("schedule %s fired: %s %s", schedule.name, schedule.event_id,
                        entry.outcome)
            self._told(entry, len(made))

    def _refused(self, entry: _Entry, due: float, exc: EventbusError, *, again: bool) -> None:
        """The fire due at ``due`` was not taken: send it again soon while its schedule's
        next due time is later (``again``), else it is lost; either way, say so."""
        schedule = entry.schedule
        assert schedule.name is not None
        retry_at = self._clock() + RETRY_SECONDS
        if again and retry_at < schedule.next_after(due):
            entry.outcome = f"refused: {exc}; sent again at {iso_time(retry_at)}"
            entry.due, entry.key_at = retry_at, due
            self._push(schedule.name, entry)
        else:
            entry.outcome = f"refused: {exc}"
            if again:
                entry.outcome += f"; the fire due at {iso_time(due)} is lost"
        logger.error("schedule %s could not emit %r: %s", schedule.name, schedule.event_id,
                     entry.outcome)
        self._told(entry, 0)

    def _told(self, entry: _Entry, deliveries: int) -> None:
        if self._on_fire is not None and entry.schedule.name is not None:
            self._on_fire(entry.schedule.name, entry.schedule.event_id, entry.outcome or "",
                          deliveries)

    def listing(self) -> list[ScheduleInfo]:
        """Each schedule: its name, spec, time zone, event, next and last fire, outcome."""
        fired = self._broker.fires()  # where daemons share a broker: fires on any of them
        return [self._listed(name, entry, fired) for name, entry in sorted(self._entries.items())]

    def _listed(self, name: str, entry: _Entry,
                fired: dict[str, float] | None = None) -> ScheduleInfo:
        schedule = entry.schedule
        last = max(entry.last or 0.0, (fired or {}).get(name, 0.0)) or None
        return ScheduleInfo(
            name=name, spec=schedule.spec, every=schedule.interval, text=schedule.text,
            tz=schedule.tz, event=schedule.event_id, args=list(schedule.args),
            kwargs=schedule.kwargs, catch_up=schedule.catch_up, next=iso_time(entry.due),
            last=iso_time(last), outcome=entry.outcome)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def next_fire(self) -> float | None:
        """When the next schedule is due, if any."""
        return min((entry.due for entry in self._entries.values()), default=None)


def config_schedules(config: Config) -> list[Schedule]:
    """The ``[[schedule]]`` tables of the config as schedules; :class:`ConfigError` names the
    table and the value that is wrong."""
    made = []
    for index, table in enumerate(config.schedules):
        options = {"args": table.get("args", ()), "kwargs": table.get("kwargs"),
                   "name": table["name"], "catch_up": table.get("catch_up", "once")}
        try:
            if "cron" in table:
                made.append(cron(table["cron"], table["event"], tz=table.get("tz", "UTC"),
                                 **options))
            else:
                made.append(every(table["every"], table["event"], **options))
        except ScheduleError as exc:
            raise ConfigError(config.path, config.schedule_key(index), exc.problem) from None
    return made
