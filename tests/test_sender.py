"""DaemonEmitter never wedges and never drops silently: batches sized from the daemon's
limit, events that can never be taken set aside loudly, and a spill file across a crash."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from eventbus_cli import DaemonEmitter
from tests.harness import Daemon, wait_for
from tests.waiting import wait_until

LISTENERS = '''
import json, os
from eventbus_cli import listener

@listener("numbered")
def numbered(n: int, pad: str = "") -> None:
    with open(os.environ["EVENTBUS_TEST_OUT"], "a") as out:
        out.write(json.dumps(n) + "\\n")

@listener("pair")
def one(n: int) -> None: ...

@listener("pair")
def two(n: int) -> None: ...
'''

pytestmark = pytest.mark.anyio


async def test_a_daemon_with_a_small_message_limit_gets_every_event_and_refuses_none(
    short_dir: Path,
) -> None:
    daemon = Daemon(short_dir, listeners=LISTENERS,
                    config="[daemon]\nmax_message_bytes = 65536\n").start()
    try:
        async with DaemonEmitter(daemon.socket) as bus:
            for n in range(1000):
                bus.emit("numbered", n=n, pad="x" * 1000)  # 1 MB in all, 64 KiB a line
            await wait_until(lambda: bus.sent == 1000, seconds=30)
            with pytest.raises(ValueError, match="max_message_bytes"):
                bus.emit("numbered", n=-1, pad="x" * 70_000)  # the limit is known by now
        wait_for(lambda: len(daemon.written()) == 1000)
        assert sorted(daemon.written()) == list(range(1000))
        assert bus.refused == 0
    finally:
        daemon.dispose()


async def test_an_event_that_can_never_fit_the_queue_is_set_aside_and_the_rest_go_on(
    short_dir: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    daemon = Daemon(short_dir, listeners=LISTENERS,
                    config="[daemon]\nqueue_size = 1\n").start()
    try:
        with caplog.at_level(logging.ERROR, logger="eventbus.outbox"):
            async with DaemonEmitter(daemon.socket) as bus:
                bus.emit("numbered", n=1)
                bus.emit("pair", n=2)  # two deliveries, and the queue holds one
                for n in range(3, 20):
                    bus.emit("numbered", n=n)
                await wait_until(lambda: bus.sent + bus.refused == 19, seconds=30)
        wait_for(lambda: len(daemon.written()) == 18)
        assert sorted(daemon.written()) == [1, *range(3, 20)]
        assert bus.refused == 1
        assert "the daemon refused event 'pair'" in caplog.text
        assert "raise queue_size above 2" in caplog.text
    finally:
        daemon.dispose()


async def test_a_stop_without_a_spill_logs_each_event_it_loses(
    short_dir: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="eventbus.outbox"):
        async with DaemonEmitter(short_dir / "none.sock", flush_timeout=0.1) as bus:
            bus.emit("numbered", n=1)
            bus.emit("numbered", n=2)
    lost = [r.getMessage() for r in caplog.records if r.getMessage().startswith("lost: ")]
    assert len(lost) == 2
    assert '"kwargs":{"n":2}' in lost[1]


APP = '''
import os, signal, sys
import anyio
from eventbus_cli import DaemonEmitter

async def main():
    async with DaemonEmitter(sys.argv[1], spill=sys.argv[2], flush_timeout=30) as bus:
        if sys.argv[3] == "crash":
            for n in range(300):
                bus.emit("numbered", n=n)
            os.kill(os.getpid(), signal.SIGKILL)  # the daemon is down: all 300 are buffered

anyio.run(main)
'''


def test_an_app_killed_while_the_daemon_is_down_sends_its_spill_at_its_next_start(
    short_dir: Path,
) -> None:
    daemon = Daemon(short_dir, listeners=LISTENERS)
    spill = short_dir / "spill.jsonl"
    script = short_dir / "app.py"
    script.write_text(APP)
    crashed = subprocess.run([sys.executable, str(script), str(daemon.socket), str(spill),
                              "crash"], capture_output=True, timeout=60, check=False)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert len(spill.read_bytes().splitlines()) == 300
    assert os.stat(spill).st_mode & 0o777 == 0o600
    daemon.start()
    try:
        for _ in range(2):  # the second start finds the spill empty: nothing runs twice
            started = subprocess.run([sys.executable, str(script), str(daemon.socket),
                                      str(spill), "start"], capture_output=True, timeout=60,
                                     check=False)
            assert started.returncode == 0, started.stderr
        wait_for(lambda: len(daemon.written()) >= 300)
        assert sorted(daemon.written()) == list(range(300))
        assert spill.read_bytes() == b""
    finally:
        daemon.dispose()


async def test_an_event_refused_for_good_is_set_aside_beside_the_spill_for_an_operator(
    short_dir: Path,
) -> None:
    daemon = Daemon(short_dir, listeners=LISTENERS).start()
    spill = short_dir / "spill.jsonl"
    try:
        async with DaemonEmitter(daemon.socket, spill=spill) as bus:
            bus.emit("numbered", n="not a number")
            bus.emit("numbered", n=2)
            await wait_until(lambda: bus.sent + bus.refused == 2, seconds=30)
        wait_for(lambda: daemon.written() == [2])
        [line] = (short_dir / "spill.jsonl.refused").read_bytes().splitlines()
        assert b'"kwargs":{"n":"not a number"}' in line
        assert b'"key":' in line  # resent with `eventbus emit --file`, it runs at most once
        resent = daemon.cli("emit", "--file", str(short_dir / "spill.jsonl.refused"))
        assert resent.returncode == 1  # the listener still takes ints only
        assert "line 1:" in resent.stderr
    finally:
        daemon.dispose()
