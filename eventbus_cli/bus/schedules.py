"""``cron`` and ``every``: periodic emits, declared in listener modules or eventbus.toml.

A :class:`Schedule` knows only when it fires next after a given instant; the daemon's
scheduler keeps one timer for the nearest of them. Cron specs are read by croniter (5
fields, or 6 with seconds first) in the schedule's time zone: a local time that a DST change
skips fires once at the first valid instant after it, and one that it repeats fires once,
the first time. An interval fires on a fixed grid from the Unix epoch, so it never drifts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from ..errors import InvalidEventIdError, ScheduleError
from ..names import validate_event_id

__all__ = ("CATCH_UPS", "Schedule", "cron", "every", "parse_interval")

CATCH_UPS = ("once", "skip")
"""What a schedule does at start about fires missed while no daemon ran."""
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_YEAR = 366 * 86_400.0


class Schedule:
    """A periodic emit of ``event_id`` with ``args`` and ``kwargs``: by a cron ``spec`` in
    the time zone ``tz``, or every ``interval`` seconds. Made by :func:`cron` or
    :func:`every`; ``name`` is set by the loader from the variable when not given."""

    __slots__ = ("_cron", "_zone", "args", "catch_up", "event_id", "interval", "kwargs",
                 "name", "spec", "tz")

    def __init__(self, event_id: str, *, spec: str | None, interval: float | None,
                 args: Sequence[Any], kwargs: Mapping[str, Any] | None, tz: str,
                 name: str | None, catch_up: str) -> None:
        try:
            validate_event_id(event_id)
        except InvalidEventIdError as exc:
            raise ScheduleError(str(exc)) from None
        if name is not None and (not isinstance(name, str) or not name):
            raise ScheduleError(f"name must be a non-empty string, not {name!r}")
        if catch_up not in CATCH_UPS:
            raise ScheduleError(f"catch_up must be one of {', '.join(map(repr, CATCH_UPS))}, "
                                f"not {catch_up!r}")
        if not isinstance(args, list | tuple) or not isinstance(kwargs or {}, Mapping):
            raise ScheduleError("args must be a list and kwargs a mapping of names to values")
        self.event_id = event_id
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.name = name
        self.catch_up = catch_up
        self.spec = spec
        self.interval = interval
        self.tz = tz
        self._zone = _zone(tz)
        self._cron = _cron_kind(spec) if spec is not None else None

    @property
    def text(self) -> str:
        """The spec as written: ``cron 0 9 * * 1-5 (Europe/Oslo)`` or ``every 10m``."""
        if self.spec is not None:
            return f"cron {self.spec} ({self.tz})"
        assert self.interval is not None
        return f"every {_interval_text(self.interval)}"

    def next_after(self, after: float) -> float:
        """The first fire strictly after the instant ``after`` (a time.time() value)."""
        if self.interval is not None:
            return (math.floor(after / self.interval) + 1) * self.interval
        from croniter import croniter

        assert self.spec is not None  # a schedule has a spec or an interval
        zone = self._zone
        local = datetime.fromtimestamp(after, zone).replace(tzinfo=None)
        times = croniter(self.spec, local, second_at_beginning=self._cron == 6)
        while True:
            wall: datetime = times.get_next(datetime)
            instant = _instant(wall, zone)
            if instant > after:  # a repeated local time already passed is not fired again
                return instant

    def __repr__(self) -> str:
        return f"<Schedule {self.name or '?'}: {self.text} -> {self.event_id}>"


def cron(spec: str, event_id: str, *, args: Sequence[Any] = (),
         kwargs: Mapping[str, Any] | None = None, tz: str = "UTC", name: str | None = None,
         catch_up: str = "once") -> Schedule:
    """Emit ``event_id`` at the times of the cron ``spec`` (``"0 9 * * 1-5"``; 6 fields put
    seconds first) in the IANA time zone ``tz``. ``catch_up="once"`` fires once at start
    if a fire was missed while no daemon ran; ``"skip"`` does not."""
    if not isinstance(spec, str):
        raise ScheduleError(f"a cron spec is a string such as '0 9 * * 1-5', not {spec!r}")
    return Schedule(event_id, spec=spec, interval=None, args=args, kwargs=kwargs, tz=tz,
                    name=name, catch_up=catch_up)


def every(interval: float | str | timedelta, event_id: str, *, args: Sequence[Any] = (),
          kwargs: Mapping[str, Any] | None = None, name: str | None = None,
          catch_up: str = "once") -> Schedule:
    """Emit ``event_id`` every ``interval``: seconds, a timedelta, or ``"90s"``, ``"10m"``,
    ``"2h"``, ``"1d"``; from 1 s to a year, on a grid that never drifts."""
    return Schedule(event_id, spec=None, interval=parse_interval(interval), args=args,
                    kwargs=kwargs, tz="UTC", name=name, catch_up=catch_up)


def parse_interval(interval: object) -> float:
    """Seconds in ``interval`` (a number, a timedelta, or ``"10m"``); 1 s to a year."""
    seconds: float | None = None
    if isinstance(interval, timedelta):
        seconds = interval.total_seconds()
    elif isinstance(interval, int | float) and not isinstance(interval, bool):
        seconds = float(interval)
    elif isinstance(interval, str) and interval[-1:] in _UNITS:
        try:
            seconds = float(interval[:-1]) * _UNITS[interval[-1]]
        except ValueError:
            seconds = None
    if seconds is None or not 1 <= seconds <= _YEAR:
        raise ScheduleError(f"an interval is 1 s to a year, as seconds or '90s', '10m', '2h', "
                            f"'1d'; not {interval!r}")
    return seconds


def _cron_kind(spec: str) -> int:
    from croniter import croniter

    fields = len(spec.split())
    if fields not in (5, 6) or not croniter.is_valid(spec, second_at_beginning=fields == 6):
        raise ScheduleError(f"{spec!r} is not a cron spec: give 5 fields (minute hour day "
                            "month weekday, e.g. '0 9 * * 1-5') or 6 with seconds first")
    from croniter import CroniterError

    try:  # a spec may be well formed and still name no time at all ('0 0 30 2 *')
        croniter(spec, datetime(2000, 1, 1), second_at_beginning=fields == 6).get_next(float)
    except CroniterError:
        raise ScheduleError(f"{spec!r} never fires: no date matches it; check its day and "
                            "month fields (April has no 31st, February no 30th)") from None
    return fields


def _zone(name: str) -> tzinfo:
    if name == "UTC":
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ScheduleError(f"unknown time zone {name!r}: give an IANA name such as "
                            "'Europe/Oslo' or 'UTC'") from None


def _instant(wall: datetime, zone: tzinfo) -> float:
    """The instant of the local time ``wall``: its first occurrence if the clocks repeat
    it, the end of the gap if they skip it."""
    first = wall.replace(tzinfo=zone, fold=0)
    instant = first.timestamp()
    if datetime.fromtimestamp(instant, zone).replace(tzinfo=None) == wall:
        return instant
    # Skipped: the transition lies between the two readings of the offset; find it.
    low, high = wall.replace(tzinfo=zone, fold=1).timestamp(), instant
    low, high = min(low, high), max(low, high)
    while high - low > 0.5:
        middle = (low + high) / 2
        local = datetime.fromtimestamp(middle, zone).replace(tzinfo=None)
        if local < wall:
            low = middle
        else:
            high = middle
    return float(math.ceil(high))


def _interval_text(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
