"""The errors a daemon answers with: one :class:`RemoteError` subclass per error code, so a
client can ``except RemoteQueueFullError`` instead of comparing codes.

Each keeps the daemon's ``code``, ``message`` and ``details``; :func:`remote_error` makes the
right one for a reply, and a code this client does not know yet stays a plain RemoteError.
"""

from __future__ import annotations

from typing import ClassVar

from .errors import RemoteError

__all__ = (
    "RemoteBackendError",
    "RemoteBadArgumentsError",
    "RemoteBadJsonError",
    "RemoteBadRequestError",
    "RemoteBusyError",
    "RemoteConflictError",
    "RemoteIdleError",
    "RemoteInternalError",
    "RemoteInvalidEventError",
    "RemoteJournalError",
    "RemoteNotAllowedError",
    "RemoteNotFoundError",
    "RemoteQueueFullError",
    "RemoteReloadFailedError",
    "RemoteShuttingDownError",
    "RemoteTooLargeError",
    "RemoteUnknownOpError",
    "RemoteUnroutedError",
    "remote_error",
)

_BY_CODE: dict[str, type[RemoteError]] = {}


class _Coded(RemoteError):
    code_of_class: ClassVar[str] = ""

    def __init_subclass__(cls, *, code: str, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.code_of_class = code
        _BY_CODE[code] = cls


def remote_error(code: str, message: str,
                 details: dict[str, object] | None = None) -> RemoteError:
    """The error a reply of ``code`` stands for: its subclass, or RemoteError if unknown."""
    return _BY_CODE.get(code, RemoteError)(code, message, details)


class RemoteBadJsonError(_Coded, code="bad_json"):
    """A request line was not a JSON object in UTF-8."""


class RemoteBadRequestError(_Coded, code="bad_request"):
    """A request field was missing, unknown or of the wrong type."""


class RemoteUnknownOpError(_Coded, code="unknown_op"):
    """The daemon does not know the op: it may be older than this client."""


class RemoteUnroutedError(_Coded, code="unrouted"):
    """An emit that required a listener matched none: it was not emitted."""


class RemoteInvalidEventError(_Coded, code="invalid_event"):
    """An event id broke the naming rule: nothing was queued."""


class RemoteTooLargeError(_Coded, code="too_large"):
    """A request line was over the daemon's ``max_message_bytes``; the connection is closed."""


class RemoteQueueFullError(_Coded, code="queue_full"):
    """The daemon's queue had no room for every delivery of the event: nothing was queued."""


class RemoteShuttingDownError(_Coded, code="shutting_down"):
    """The daemon is stopping and takes no new events."""


class RemoteBusyError(_Coded, code="busy"):
    """The daemon has ``max_connections`` open; this one was closed."""


class RemoteIdleError(_Coded, code="idle"):
    """No complete request came within the daemon's ``idle_timeout``; the connection closed."""


class RemoteNotAllowedError(_Coded, code="not_allowed"):
    """The daemon does not let this user use its socket."""


class RemoteNotFoundError(_Coded, code="not_found"):
    """No delivery (or schedule, or event) has the id or name asked for."""


class RemoteConflictError(_Coded, code="conflict"):
    """The delivery cannot be retried: it is not failed, or its listener is gone."""


class RemoteReloadFailedError(_Coded, code="reload_failed"):
    """A listener file failed to load; ``details`` name its ``file`` and ``line``. The
    listeners that ran before still run."""


class RemoteBadArgumentsError(_Coded, code="bad_arguments"):
    """A listener of the event cannot take the emit's arguments: nothing was queued.
    ``details["listeners"]`` names each one, its signature and what does not fit."""


class RemoteJournalError(_Coded, code="journal"):
    """The daemon's journal could not be written: the request was not acknowledged."""


class RemoteBackendError(_Coded, code="backend_unavailable"):
    """The daemon's Redis backend cannot be reached: the request was not acknowledged, and
    the daemon goes on once Redis is back."""


class RemoteInternalError(_Coded, code="internal"):
    """The daemon failed on a bug of its own; its log holds the traceback."""
