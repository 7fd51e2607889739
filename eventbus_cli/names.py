"""Event ids and listener patterns: the naming rule, checked once for every layer."""

from __future__ import annotations

import re

from .errors import InvalidEventIdError

__all__ = ("EVENT_ID", "PATTERN", "is_pattern", "validate_event_id", "validate_pattern")

EVENT_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,200}")
"""An event id: 1 to 200 letters, digits and ``_ . : -``."""
PATTERN = re.compile(r"[A-Za-z0-9_.:\-*?\[\]!]{1,200}")
"""A listener's id or glob (``user_*``, ``*``, ``order.[ab]``)."""
_GLOB_CHARS = frozenset("*?[")


def validate_event_id(event_id: object) -> str:
    """Return ``event_id`` if it is a valid event id, else raise :class:`InvalidEventIdError`."""
    if isinstance(event_id, str) and EVENT_ID.fullmatch(event_id):
        return event_id
    raise InvalidEventIdError(event_id)


def validate_pattern(pattern: object) -> str:
    """Return ``pattern`` if it is a valid listener id or glob, else raise
    :class:`InvalidEventIdError`."""
    if isinstance(pattern, str) and PATTERN.fullmatch(pattern):
        return pattern
    raise InvalidEventIdError(pattern, pattern=True)


def is_pattern(event_id: str) -> bool:
    """Whether a listener's id is a glob rather than one exact event id."""
    return not _GLOB_CHARS.isdisjoint(event_id)
