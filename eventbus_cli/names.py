"""Event ids and listener patterns: the naming rule, checked once for every layer."""

from __future__ import annotations

import re

from .errors import InvalidEventIdError

__all__ = ("EVENT_ID", "LISTENER_MODULES", "PATTERN", "is_pattern", "validate_event_id",
           "validate_pattern")

EVENT_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,200}")
"""An event id: 1 to 200 letters, digits and ``_ . : -``."""
PATTERN = re.compile(r"[A-Za-z0-9_.:\-*?\[\]!]{1,200}")
"""A listener's id or glob (``user_*``, ``*``, ``order.[ab]``)."""
_GLOB_CHARS = frozenset("*?[")
LISTENER_MODULES = "eventbus_listeners."
"""Listener files are imported as ``eventbus_listeners.<file stem>``, clear of real modules;
a listener's name leaves the prefix out (``welcome:send_email``)."""


def validate_event_id(event_id: object) -> str:
    """Return ``event_id`` if it is a valid event id, else raise :class:`InvalidEventIdError`."""
    if isinstance(event_id, str) and EVENT_ID.fullmatch(event_id):
        return event_id
    raise InvalidEventIdError(event_id)


def validate_pattern(pattern: object) -> str:
    """Return ``pattern`` if it is a valid listener id or glob, else raise
    :class:`InvalidEventIdError`."""
    if isinstance(pattern, str) and PATTERN.fullmatch(pattern) and _closed(pattern):
        return pattern
    raise InvalidEventIdError(pattern, pattern=True)


def _closed(pattern: str) -> bool:
    """Whether every ``[`` of a glob is closed: fnmatch would read an unclosed one as a
    plain character, and a pattern meant as a glob would then match nothing."""
    start = pattern.find("[")
    while start >= 0:
        inside = start + 1 + pattern.startswith("!", start + 1)
        inside += pattern.startswith("]", inside)  # a ] first in the set is one of its chars
        end = pattern.find("]", inside)
        if end < 0:
            return False
        start = pattern.find("[", end + 1)
    return True


def is_pattern(event_id: str) -> bool:
    """Whether a listener's id is a glob rather than one exact event id."""
    return not _GLOB_CHARS.isdisjoint(event_id)
