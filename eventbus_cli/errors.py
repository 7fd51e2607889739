"""Every error eventbus raises derives from :class:`EventbusError`.

Each class takes the facts as fields and builds its own message from them, so a message
always names what was wrong and what to do about it. An error a daemon answers a request
with carries its wire code (:class:`ErrorCode`) as ``code`` and its extra fields as
:meth:`EventbusError.error_fields`, as Litestar's exceptions carry their status code: the
daemon renders them all in one place.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = (
    "ArgumentError",
    "BackendError",
    "BadArgumentsError",
    "ConfigError",
    "DaemonRunningError",
    "DeliveryError",
    "EmitterNotRunningError",
    "ErrorCode",
    "EventFileError",
    "EventbusError",
    "InvalidEventIdError",
    "JournalError",
    "ListenerError",
    "LoaderError",
    "NoDaemonError",
    "ProtocolError",
    "QueueFullError",
    "RemoteBackendError",
    "RemoteBadArgumentsError",
    "RemoteBadJsonError",
    "RemoteBadRequestError",
    "RemoteBusyError",
    "RemoteConflictError",
    "RemoteError",
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
    "ScheduleError",
    "SocketFileError",
    "UnknownListenerError",
    "UntrustedDaemonError",
    "remote_error",
)

EVENT_ID_RULE = "1 to 200 characters of letters, digits and _ . : -"


class ErrorCode:
    """The ``error.code`` values a daemon sends: what a client can tell apart in a refusal."""

    BAD_JSON = "bad_json"  # the line is not a JSON object in UTF-8
    BAD_REQUEST = "bad_request"  # a field is missing, unknown, or of the wrong type
    UNKNOWN_OP = "unknown_op"  # the op is not one this daemon knows (`hello` names its protocol)
    UNROUTED = "unrouted"  # an emit with "require_listener" that no listener matches
    INVALID_EVENT = "invalid_event"  # an event id breaks the naming rule
    TOO_LARGE = "too_large"  # the line is over max_message_bytes; the connection is closed
    QUEUE_FULL = "queue_full"  # no room (queue_size, max_queue_bytes, max_scheduled); none queued
    SHUTTING_DOWN = "shutting_down"  # the daemon is draining to stop; send to it once it is back
    BUSY = "busy"  # max_connections are open; the connection is closed
    IDLE = "idle"  # no complete request within idle_timeout; the connection is closed
    NOT_ALLOWED = "not_allowed"  # the peer's uid/gid may not use the socket
    NOT_FOUND = "not_found"  # no delivery has that id
    CONFLICT = "conflict"  # the delivery cannot be retried: not failed, or its listener is gone
    RELOAD_FAILED = "reload_failed"  # a listener file failed; details name "file" and "line"
    BAD_ARGUMENTS = "bad_arguments"  # a listener cannot take the emit's arguments; nothing queued
    JOURNAL = "journal"  # the journal could not be written; the request was not acknowledged
    BACKEND = "backend_unavailable"  # the shared store did not take it; not acknowledged
    INTERNAL = "internal"  # a defect of the daemon; its log has the traceback


class EventbusError(Exception):
    """Base class of every error eventbus raises."""

    code: str | None = None
    """The wire code a daemon answers a request with when a handler raises this; None for
    errors that never cross the wire (an internal error, if one does)."""

    def error_fields(self) -> dict[str, object]:
        """The error object's fields besides ``code`` and ``message``."""
        return {}


class BadArgumentsError(EventbusError, TypeError):
    """An emit's arguments do not fit some listener of the event: nothing was queued.
    ``refusals`` holds, per such listener, its name, its signature and what does not fit."""

    code = ErrorCode.BAD_ARGUMENTS

    def __init__(self, event_id: str, refusals: list[tuple[str, str, str]]) -> None:
        self.event_id = event_id
        self.refusals = refusals
        super().__init__(f"{event_id}: " + "; ".join(
            f"{name}{signature}{problem}" for name, signature, problem in refusals))

    def error_fields(self) -> dict[str, object]:
        return {"event": self.event_id, "listeners": [
            {"listener": name, "signature": signature, "problem": f"{name}{signature}{problem}"}
            for name, signature, problem in self.refusals]}


class ScheduleError(EventbusError, ValueError):
    """A ``cron`` or ``every`` schedule is wrong: ``problem`` names the value and what is
    accepted instead."""

    code = ErrorCode.RELOAD_FAILED  # a daemon meets it loading listener files

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


class ListenerError(EventbusError, TypeError, ValueError):
    """``@listener`` was used wrongly; raised when the module is imported."""

    code = ErrorCode.RELOAD_FAILED

    def __init__(self, target: str, problem: str) -> None:
        self.target = target
        self.problem = problem
        super().__init__(f"@listener on {target}: {problem}")


class InvalidEventIdError(EventbusError, ValueError):
    """An event id (or a listener's pattern) breaks the naming rule."""

    code = ErrorCode.INVALID_EVENT

    def __init__(self, event_id: object, *, pattern: bool = False) -> None:
        self.event_id = event_id
        kind = "event pattern" if pattern else "event id"
        rule = EVENT_ID_RULE + (", or a glob made with * ? [ ]" if pattern else "")
        unclosed = pattern and isinstance(event_id, str) and "[" in event_id
        why = " (each [ needs a ] after it: [ab] matches a or b)" if unclosed else ""
        super().__init__(f"invalid {kind} {event_id!r}: use {rule}{why}")


class QueueFullError(EventbusError):
    """A non-waiting emit found no room in the bounded queue: ``needed`` deliveries (or
    bytes, as ``unit`` says) where at most ``limit`` may wait."""

    code = ErrorCode.QUEUE_FULL

    def __init__(self, event_id: str, needed: int, limit: int, *,
                 unit: str = "deliveries") -> None:
        self.event_id = event_id
        self.needed = needed
        self.limit = limit
        self.unit = unit
        if unit.startswith("buffered"):  # a DaemonEmitter's buffer, not the daemon's queue
            setting = "buffer_bytes" if unit.endswith("bytes") else "buffer_size"
            held = f"{limit} bytes" if unit.endswith("bytes") else f"{limit} events"
            super().__init__(
                f"buffer full: event {event_id!r} was not accepted, as {held} already wait to "
                "be sent to the daemon, which is down or slower than the app (its log says "
                f"which); emit again later, or raise {setting}")
            return
        setting = {"bytes": "max_queue_bytes", "scheduled": "max_scheduled"}.get(unit,
                                                                             "queue_size")
        if self.never_fits:
            hint = f"raise {setting} above {needed}" + (
                "" if unit == "bytes" else " (the number of listeners of this event)")
        else:
            hint = f"emit again later, raise {setting}, or use `await emitter.aemit(...)`"
        noun = "scheduled deliveries" if unit == "scheduled" else unit
        needs = f"{needed} delivery" if (needed, unit) == (1, "deliveries") else f"{needed} {noun}"
        super().__init__(
            f"queue full: event {event_id!r} needs {needs} and the queue holds "
            f"at most {limit}; the event was not accepted; {hint}"
        )

    @property
    def never_fits(self) -> bool:
        """Whether the event is over the bound even with the queue empty."""
        return self.needed > self.limit

    def error_fields(self) -> dict[str, object]:
        return {"never_fits": True} if self.never_fits else {}


class EmitterNotRunningError(EventbusError, RuntimeError):
    """An emit came before the emitter started or after it began to close."""

    code = ErrorCode.SHUTTING_DOWN

    def __init__(self, state: str, emitter: str = "SimpleEventEmitter") -> None:
        self.state = state
        super().__init__(f"the emitter is {state}: emit only inside `async with {emitter}(...)`")


class ConfigError(EventbusError):
    """A config file is missing, unreadable, or holds a key or value that is not allowed."""

    def __init__(self, file: Path | str | None, key: str | None, problem: str) -> None:
        self.file = file
        self.key = key
        self.problem = problem
        where = str(file) if file is not None else "config"
        if key is not None:
            where += f": {key}"
        super().__init__(f"{where}: {problem}")


class LoaderError(EventbusError):
    """A listener file could not be imported, or the loaded set is inconsistent."""

    code = ErrorCode.RELOAD_FAILED

    def __init__(
        self, file: Path | str, problem: str, *, line: int | None = None,
        hint: str = "fix the file, or rename it to start with _ so it is skipped",
    ) -> None:
        self.file = file
        self.line = line
        self.problem = problem
        where = f"{file}, line {line}" if line is not None else str(file)
        super().__init__(f"cannot load listeners from {where}: {problem} ({hint})")

    def error_fields(self) -> dict[str, object]:
        return {"file": str(self.file), "line": self.line}


class ProtocolError(EventbusError):
    """A message broke the wire protocol; ``code`` is the error code sent back for it."""

    code: str

    def __init__(self, code: str, problem: str, *, request_id: object = None) -> None:
        self.code = code
        self.problem = problem
        self.request_id = request_id
        super().__init__(f"{code}: {problem}")


class NoDaemonError(EventbusError):
    """Nothing answers on the socket: the daemon is not running, or runs elsewhere."""

    def __init__(self, socket: Path | str, reason: str, hint: str | None = None) -> None:
        self.socket = socket
        self.reason = reason
        hint = hint or ("start one with `eventbus serve`, or point --socket / EVENTBUS_SOCKET "
                        "at the one that runs")
        super().__init__(f"no daemon is listening on {socket} ({reason}); {hint}")


class UntrustedDaemonError(EventbusError):
    """The process serving the socket runs as another user: nothing was sent to it."""

    def __init__(self, socket: Path | str, uid: int, pid: int) -> None:
        self.socket = socket
        self.uid = uid
        self.pid = pid
        super().__init__(
            f"the daemon on {socket} runs as uid {uid} (pid {pid}), not as you, so nothing "
            f"was sent to it; if you trust it, add {uid} to [daemon] allow_uids in your "
            "eventbus.toml, else remove the socket and start a daemon of your own"
        )


class RemoteError(EventbusError):
    """The daemon answered a request with an error reply: :func:`remote_error` makes the
    subclass of its code (``except RemoteQueueFullError``), or this class for a code this
    client does not know yet. Each keeps the daemon's ``code``, ``message`` and ``details``."""

    code: str

    def __init__(self, code: str, message: str, details: dict[str, object] | None = None) -> None:
        self.code = code
        self.message = message
        self.details = details or {}
        super().__init__(f"{message} [{code}]")

    def __init_subclass__(cls, *, answers: str = "", **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if answers:
            _REMOTE_BY_CODE[answers] = cls

    @property
    def for_good(self) -> bool:
        """Whether the same event sent again would be refused again: its arguments, its id,
        its size, or more deliveries than the daemon's queue can ever hold."""
        return self.code in _FOR_GOOD or (self.code == ErrorCode.QUEUE_FULL
                                          and bool(self.details.get("never_fits")))


_REMOTE_BY_CODE: dict[str, type[RemoteError]] = {}
_FOR_GOOD = frozenset({ErrorCode.BAD_ARGUMENTS, ErrorCode.INVALID_EVENT, ErrorCode.BAD_REQUEST,
                       ErrorCode.UNROUTED, ErrorCode.TOO_LARGE})


def remote_error(code: str, message: str,
                 details: dict[str, object] | None = None) -> RemoteError:
    """The error an error reply of ``code`` stands for."""
    return _REMOTE_BY_CODE.get(code, RemoteError)(code, message, details)


class RemoteBadJsonError(RemoteError, answers=ErrorCode.BAD_JSON):
    """A request line was not a JSON object in UTF-8."""


class RemoteBadRequestError(RemoteError, answers=ErrorCode.BAD_REQUEST):
    """A request field was missing, unknown or of the wrong type."""


class RemoteUnknownOpError(RemoteError, answers=ErrorCode.UNKNOWN_OP):
    """The daemon does not know the op: it may be older than this client."""


class RemoteUnroutedError(RemoteError, answers=ErrorCode.UNROUTED):
    """An emit that required a listener matched none: it was not emitted."""


class RemoteInvalidEventError(RemoteError, answers=ErrorCode.INVALID_EVENT):
    """An event id broke the naming rule: nothing was queued."""


class RemoteTooLargeError(RemoteError, answers=ErrorCode.TOO_LARGE):
    """A request line was over the daemon's ``max_message_bytes``; the connection is closed."""


class RemoteQueueFullError(RemoteError, answers=ErrorCode.QUEUE_FULL):
    """The daemon's queue had no room for every delivery of the event: nothing was queued."""


class RemoteShuttingDownError(RemoteError, answers=ErrorCode.SHUTTING_DOWN):
    """The daemon is stopping and takes no new events."""


class RemoteBusyError(RemoteError, answers=ErrorCode.BUSY):
    """The daemon has ``max_connections`` open; this one was closed."""


class RemoteIdleError(RemoteError, answers=ErrorCode.IDLE):
    """No complete request came within the daemon's ``idle_timeout``; the connection closed."""


class RemoteNotAllowedError(RemoteError, answers=ErrorCode.NOT_ALLOWED):
    """The daemon does not let this user use its socket."""


class RemoteNotFoundError(RemoteError, answers=ErrorCode.NOT_FOUND):
    """No delivery (or schedule, or event) has the id or name asked for."""


class RemoteConflictError(RemoteError, answers=ErrorCode.CONFLICT):
    """The delivery cannot be retried: it is not failed, or its listener is gone."""


class RemoteReloadFailedError(RemoteError, answers=ErrorCode.RELOAD_FAILED):
    """A listener file failed to load; ``details`` name its ``file`` and ``line``. The
    listeners that ran before still run."""


class RemoteBadArgumentsError(RemoteError, answers=ErrorCode.BAD_ARGUMENTS):
    """A listener of the event cannot take the emit's arguments: nothing was queued.
    ``details["listeners"]`` names each one, its signature and what does not fit."""


class RemoteJournalError(RemoteError, answers=ErrorCode.JOURNAL):
    """The daemon's journal could not be written: the request was not acknowledged."""


class RemoteBackendError(RemoteError, answers=ErrorCode.BACKEND):
    """The daemon's shared store cannot be reached: the request was not acknowledged, and
    the daemon goes on once it is back."""


class RemoteInternalError(RemoteError, answers=ErrorCode.INTERNAL):
    """The daemon failed on a bug of its own; its log holds the traceback."""


class EventFileError(EventbusError):
    """A line of an events file (for ``emit --file``) is not an event; nothing was sent."""

    def __init__(self, source: str, line: int, problem: str) -> None:
        self.source = source
        self.line = line
        self.problem = problem
        super().__init__(
            f"{source}, line {line}: {problem}; nothing was sent (each line must be "
            '{"event": "name", "args": [...], "kwargs": {...}}, args and kwargs optional)'
        )


class ArgumentError(EventbusError, ValueError):
    """A command-line value (``--arg``, ``--kw``) could not be read."""

    def __init__(self, option: str, value: str, problem: str) -> None:
        self.option = option
        self.value = value
        self.problem = problem
        super().__init__(f"{option} {value!r}: {problem}")


class SocketFileError(EventbusError):
    """The socket's path or its directory cannot be used safely."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"cannot serve on {path}: {problem}")


class DaemonRunningError(EventbusError):
    """Another daemon already answers on the socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            f"another eventbus daemon is already listening on {path}; stop it first, or give this "
            "one its own socket with --socket or EVENTBUS_SOCKET"
        )


class DeliveryError(EventbusError):
    """A delivery named by id cannot be found (``not_found``), or cannot be given what was
    asked of it (``conflict``)."""

    def __init__(self, delivery_id: int, problem: str, *, missing: bool = False) -> None:
        self.delivery_id = delivery_id
        self.problem = problem
        self.missing = missing  # no delivery has the id, as opposed to one that cannot do it
        self.code = ErrorCode.NOT_FOUND if missing else ErrorCode.CONFLICT
        super().__init__(f"delivery {delivery_id}: {problem}")

    def error_fields(self) -> dict[str, object]:
        return {"delivery": self.delivery_id}


class UnknownListenerError(EventbusError):
    """No listener of the bus has this name (``not_found``); ``known`` lists those that do."""

    code = ErrorCode.NOT_FOUND

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        listed = ", ".join(self.known) or "none are loaded"
        super().__init__(f"no listener is named {name!r}; the listeners are: {listed} "
                         "(`eventbus listeners list`)")

    def error_fields(self) -> dict[str, object]:
        return {"listener": self.name, "known": self.known}


class JournalError(EventbusError):
    """The journal file cannot be opened, read or written."""

    code = ErrorCode.JOURNAL

    def __init__(self, path: Path, problem: str, hint: str = "") -> None:
        self.path = path
        self.problem = problem
        self.hint = hint
        super().__init__(f"journal {path}: {problem}" + (f"; {hint}" if hint else ""))


class BackendError(EventbusError):
    """The Redis backend at ``url`` (its password left out) cannot be reached or used."""

    code = ErrorCode.BACKEND

    def __init__(self, url: str, problem: str, hint: str = "") -> None:
        self.url = url
        self.problem = problem
        self.hint = hint
        super().__init__(f"backend {url}: {problem}" + (f"; {hint}" if hint else ""))
