"""Where the Redis store keeps a listener's deliveries: three streams, one per priority
(:func:`stream_of`), read highest first, so that a high-priority delivery overtakes a
backlog of normal ones within one read. What a stream entry holds is the shared payload
(``stores/shared/codec.py``).
"""

from __future__ import annotations

__all__ = ("listener_of", "stream_of", "streams_of")

_SUFFIXES = ("\x1fhigh", "", "\x1flow")  # by priority: each listener has a stream of each


def stream_of(listener: str, priority: int) -> str:
    """The name of the stream (under ``P:l:``) that holds ``listener``'s deliveries of a
    priority: its name for normal ones, so a bus of older daemons reads them alike."""
    return listener + _SUFFIXES[priority]


def streams_of(listener: str) -> tuple[str, ...]:
    """Every stream of ``listener``, highest priority first (the order they are read in)."""
    return tuple(listener + suffix for suffix in _SUFFIXES)


def listener_of(stream: str) -> str:
    """The listener whose deliveries the stream ``stream`` holds."""
    return stream.partition("\x1f")[0]
