"""The one check of numbers that config, listener options, the emitter and the protocol share.

:func:`number_problem` says what a value must be, or None when it is fine; each caller wraps
that in the error of its own layer (a ConfigError names the key and file, a ListenerError the
listener, a ProtocolError the field).
"""

from __future__ import annotations

import math
from typing import TypeGuard

__all__ = ("is_whole", "number_problem")


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
