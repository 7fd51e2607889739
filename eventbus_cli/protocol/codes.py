"""The ``error.code`` values of the wire protocol: what a client can tell apart in a refusal."""

from __future__ import annotations

__all__ = ("ErrorCode",)


class ErrorCode:
    """The ``error.code`` values a daemon sends."""

    BAD_JSON = "bad_json"  # the line is not a JSON object in UTF-8
    BAD_REQUEST = "bad_request"  # a field is missing, unknown, or of the wrong type
    UNKNOWN_OP = "unknown_op"
    UNROUTED = "unrouted"  # an emit with "require_listener" that no listener matches
    INVALID_EVENT = "invalid_event"  # an event id breaks the naming rule
    TOO_LARGE = "too_large"  # the line is over max_message_bytes; the connection is closed
    QUEUE_FULL = "queue_full"
    SHUTTING_DOWN = "shutting_down"
    BUSY = "busy"  # max_connections are open; the connection is closed
    IDLE = "idle"  # no complete request within idle_timeout; the connection is closed
    NOT_ALLOWED = "not_allowed"  # the peer's uid/gid may not use the socket
    NOT_FOUND = "not_found"  # no delivery has that id
    CONFLICT = "conflict"  # the delivery cannot be retried: not failed, or its listener is gone
    RELOAD_FAILED = "reload_failed"  # a listener file failed; details name "file" and "line"
    BAD_ARGUMENTS = "bad_arguments"  # a listener cannot take the emit's arguments; nothing queued
    JOURNAL = "journal"  # the journal could not be written; the request was not acknowledged
    BACKEND = "backend_unavailable"  # Redis cannot be reached; the request was not acknowledged
    INTERNAL = "internal"
