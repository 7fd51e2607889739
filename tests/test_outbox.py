"""DaemonEmitter on a real daemon: nothing blocks, nothing is lost, nothing runs twice."""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
import pytest

from eventbus_cli import DaemonEmitter, EmitterNotRunningError, InvalidEventIdError, QueueFullError
from tests.harness import Daemon, wait_for
from tests.waiting import wait_until

LISTENERS = '''
import json, os
from eventbus_cli import listener

@listener("numbered")
def numbered(n: int) -> None:
    with open(os.environ["EVENTBUS_TEST_OUT"], "a") as out:
        out.write(json.dumps(n) + "\\n")
'''

pytestmark = pytest.mark.anyio


def _numbers(daemon: Daemon) -> list[int]:
    return daemon.written()


async def test_a_daemon_restarted_amid_5000_emits_runs_each_event_exactly_once(
    short_dir: Path,
) -> None:
    daemon = Daemon(short_dir, listeners=LISTENERS, config="[journal]\n").start()
    try:
        async with DaemonEmitter(daemon.socket, flush_timeout=30) as bus:
            for n in range(2500):
                bus.emit("numbered", n=n)
            await wait_until(lambda: bus.sent > 0, seconds=15)  # batches in flight at the stop
            assert await anyio.to_thread.run_sync(daemon.stop) == 0
            for n in range(2500, 5000):
                bus.emit("numbered", n=n)  # buffered while no daemon runs
            assert bus.pending > 0
            await anyio.to_thread.run_sync(daemon.start)
        assert (bus.sent, bus.refused, bus.unsent) == (5000, 0, [])
        wait_for(lambda: len(_numbers(daemon)) >= 5000, seconds=60)
        assert sorted(_numbers(daemon)) == list(range(5000))
    finally:
        daemon.dispose()


async def test_events_wait_for_a_daemon_that_is_not_there_yet(
    short_dir: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    daemon = Daemon(short_dir, listeners=LISTENERS)
    with caplog.at_level(logging.INFO, logger="eventbus.outbox"):
        async with DaemonEmitter(daemon.socket) as bus:
            for n in range(10):
                bus.emit("numbered", n=n)
            await anyio.to_thread.run_sync(daemon.start)
    try:
        wait_for(lambda: len(_numbers(daemon)) == 10)
        assert sorted(_numbers(daemon)) == list(range(10))
    finally:
        daemon.dispose()
    # however many tries the wait took (under 30 s), it is said once, and so is the end of
    # it, with how many events waited
    assert caplog.text.count("cannot send events to the daemon") == 1
    assert caplog.text.count(f"sending events to the daemon on {daemon.socket} again") == 1
    assert "10 events that waited go now" in caplog.text


async def test_without_a_daemon_a_full_buffer_refuses_and_exit_says_what_was_lost(
    short_dir: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="eventbus"):
        async with DaemonEmitter(short_dir / "none.sock", buffer_size=3,
                                 flush_timeout=0.2) as bus:
            for n in range(3):
                bus.emit("numbered", n=n)
            with pytest.raises(QueueFullError, match="3 events already wait to be sent"):
                bus.emit("numbered", n=3)
    assert len(bus.unsent) == 3
    assert "3 events not sent to the daemon on " in caplog.text
    assert "cannot send events to the daemon (no daemon is listening" in caplog.text


async def test_an_event_the_daemon_refuses_is_logged_and_the_rest_go_on(
    short_dir: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    daemon = Daemon(short_dir, listeners=LISTENERS).start()
    try:
        with caplog.at_level(logging.ERROR, logger="eventbus"):
            async with DaemonEmitter(daemon.socket) as bus:
                bus.emit("numbered", n=1)
                bus.emit("numbered", n="two")
                bus.emit("numbered", n=3)
        assert (bus.sent, bus.refused) == (2, 1)
        assert ("the daemon refused event 'numbered' (dropped; the others go on): numbered: "
                in caplog.text)
        assert 'n expects int, got the string "two"' in caplog.text
        wait_for(lambda: sorted(_numbers(daemon)) == [1, 3])
    finally:
        daemon.dispose()


async def test_an_emit_outside_the_context_says_where_emits_go(short_dir: Path) -> None:
    bus = DaemonEmitter(short_dir / "none.sock", flush_timeout=0)
    with pytest.raises(EmitterNotRunningError, match=r"inside `async with DaemonEmitter"):
        bus.emit("numbered", n=1)
    async with bus:
        pass
    with pytest.raises(EmitterNotRunningError):
        bus.emit("numbered", n=1)


async def test_bad_input_is_refused_at_emit(short_dir: Path) -> None:
    async with DaemonEmitter(short_dir / "none.sock", flush_timeout=0) as bus:
        with pytest.raises(InvalidEventIdError):
            bus.emit("not valid")
        with pytest.raises(TypeError, match="event 'numbered': the arguments must be JSON"):
            bus.emit("numbered", n=object())
        assert bus.pending == 0
