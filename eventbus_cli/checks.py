"""The one check of numbers that config, listener options, the emitter and the protocol share.

:func:`number_problem` says what a value must be, or None when it is fine; each caller wraps
that in the error of its own layer (a ConfigError names the key and file, a ListenerError the
listener, a ProtocolError the field).
"""

from __future__ import annotations

import math
from typing import TypeGuard

__all__ = ("is_whole", "number_problem", "rate_per_second")


def is_whole(value: object) -> TypeGuard[int]:
    """Whether ``value`` is an int (a bool is not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def number_problem(
    value: object, *, whole: bool, minimum: float, above: bool = False,
    maximum: float | None = None,
) -> str | None:
    """None if ``value`` is a number in range; else what it must be, e.g. "a whole number >= 1".

    ``above`` makes the minimum exclusive (``> 0``); NaN and bools are never numbers here.
    """
    kind = "a whole number" if whole else "a number"
    want = f"{kind} {'>' if above else '>='} {minimum:g}"
    if maximum is not None:
        want += f", up to {maximum:g}"
    if whole and not is_whole(value):
        return want
    if not whole and (not isinstance(value, int | float) or isinstance(value, bool)
                      or math.isnan(value)):
        return want
    number: float = value  # type: ignore[assignment]  # checked just above
    if number < minimum or (above and number == minimum):
        return want
    if maximum is not None and number > maximum:
        return want
    return None


_PER = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
        "h": 3600.0, "hour": 3600.0}


def rate_per_second(text: object) -> float:
    """A rate such as ``"10/s"``, ``"100/min"`` or ``"500/hour"`` as calls per second;
    ValueError saying what a rate looks like otherwise."""
    want = ('a rate such as "10/s", "100/min" or "500/h": a number above 0, then /s, /min '
            "or /h")
    if not isinstance(text, str):
        raise ValueError(f"{want}, not {text!r}")
    count, _, unit = text.replace(" ", "").partition("/")
    seconds = _PER.get(unit.lower().removesuffix("s") if len(unit) > 3 else unit.lower())
    try:
        number = float(count)
    except ValueError:
        number = math.nan
    if seconds is None or not math.isfinite(number) or number <= 0:
        raise ValueError(f"{want}, not {text!r}")
    return number / seconds
