"""Every error code the daemon sends has its RemoteError subclass."""

from __future__ import annotations

from eventbus_cli.errors import ErrorCode, RemoteError, RemoteQueueFullError, remote_error


def test_every_error_code_has_a_class_of_its_own() -> None:
    codes = {value for name, value in vars(ErrorCode).items() if name.isupper()}
    classes = {code: type(remote_error(code, "m")) for code in codes}
    assert RemoteError not in classes.values(), [c for c, k in classes.items() if k is RemoteError]
    assert len(set(classes.values())) == len(codes)


def test_an_error_keeps_what_the_daemon_said() -> None:
    error = remote_error("queue_full", "queue full: ...", {"accepted": 3})
    assert isinstance(error, RemoteQueueFullError)
    assert (error.code, error.message, error.details) == ("queue_full", "queue full: ...",
                                                          {"accepted": 3})
    assert str(error) == "queue full: ... [queue_full]"


def test_a_code_this_client_does_not_know_stays_a_remote_error() -> None:
    error = remote_error("from_the_future", "new")
    assert type(error) is RemoteError
    assert error.code == "from_the_future"


def _subclasses(cls: type[Exception]) -> list[type[Exception]]:
    children: list[type[Exception]] = cls.__subclasses__()
    return [cls, *(sub for child in children for sub in _subclasses(child))]


def test_every_error_a_handler_may_raise_carries_a_code_the_protocol_knows() -> None:
    import eventbus_cli.daemon.handlers  # noqa: F401 - loads the daemon's own error classes
    from eventbus_cli.errors import EventbusError

    codes = {value for name, value in vars(ErrorCode).items() if name.isupper()}
    coded = {cls.__name__: cls.__dict__["code"] for cls in _subclasses(EventbusError)
             if isinstance(cls.__dict__.get("code"), str)}
    assert {"QueueFullError", "BadArgumentsError", "LoaderError", "JournalError",
            "BackendError", "UnknownScheduleError", "InvalidEventIdError"} <= set(coded)
    assert set(coded.values()) <= codes, coded
