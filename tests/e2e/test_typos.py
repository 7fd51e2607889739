"""A typo in an event id is loud: the daemon's log and the CLI say "did you mean", and the
app side may refuse such an emit outright."""

from __future__ import annotations

import logging

import anyio
import pytest

from eventbus_cli import AsyncClient, DaemonEmitter
from eventbus_cli.errors import RemoteUnroutedError
from tests.harness import Daemon, wait_for


def test_an_unrouted_id_is_logged_once_with_a_did_you_mean(daemon: Daemon) -> None:
    for _ in range(3):
        result = daemon.cli("emit", "user_creatd", "email=ada@example.com")
        assert result.returncode == 0
        assert "did you mean 'user_created'?" in result.stderr
    far = daemon.cli("emit", "nothing.like.it")
    assert "did you mean" not in far.stderr
    log = daemon.logs()
    assert log.count("event 'user_creatd' matches no listener") == 1
    assert "did you mean 'user_created'?" in log  # named once, though two listeners take it
    assert "event 'nothing.like.it' matches no listener" in log
    assert daemon.json("queue")["unrouted"] == 4


def test_require_listener_refuses_an_unrouted_event_of_a_batch_and_keeps_those_before(
    daemon: Daemon,
) -> None:
    async def main() -> None:
        async with AsyncClient(daemon.socket) as client:
            lines = [b'{"event":"user_created","kwargs":{"n":1}}', b'{"event":"user_creatd"}',
                     b'{"event":"user_created","kwargs":{"n":3}}']
            with pytest.raises(RemoteUnroutedError) as refused:
                await client.emit_batch(lines, require_listener=True)
            assert (refused.value.details["accepted"], refused.value.details["index"]) == (1, 1)
            assert "did you mean 'user_created'?" in str(refused.value)

    anyio.run(main)
    daemon.wait_for_records(1)
    assert [record["kwargs"] for record in daemon.records()] == [{"n": 1}]


def test_an_emitter_with_require_listener_drops_a_typo_loudly_and_sends_the_rest(
    daemon: Daemon, caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        async with DaemonEmitter(daemon.socket, require_listener=True) as bus:
            bus.emit("user_created", n=1)
            bus.emit("user_creatd", n=2)
            bus.emit("user_created", n=3)

    with caplog.at_level(logging.ERROR, "eventbus.outbox"):
        anyio.run(main)
    wait_for(lambda: len(daemon.records()) == 2)
    assert sorted(record["kwargs"]["n"] for record in daemon.records()) == [1, 3]
    [error] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "user_creatd" in error
    assert "did you mean 'user_created'?" in error


