"""Every error code the daemon sends has its RemoteError subclass."""

from __future__ import annotations

from eventbus_cli.errors import RemoteError
from eventbus_cli.protocol.codes import ErrorCode
from eventbus_cli.remote import RemoteQueueFullError, remote_error


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
