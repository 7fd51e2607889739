"""The daemon's life as a process: start-up checks, the socket file, signals and draining."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from tests.harness import EVENTBUS, Daemon, running, wait_for

pytestmark = pytest.mark.process  # signals, exit codes, kill -9, daemons side by side


def test_socket_is_0600_in_a_directory_of_0700(daemon: Daemon) -> None:
    assert stat.S_IMODE(os.stat(daemon.socket).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(daemon.socket.parent).st_mode) == 0o700
    assert stat.S_ISSOCK(os.stat(daemon.socket).st_mode)


def test_sigterm_drains_accepted_deliveries_removes_the_socket_and_exits_0(
    daemon: Daemon,
) -> None:
    names = [f"g{n}" for n in range(5)]
    daemon.emit_gates(*names)
    daemon.signal_and_wait_for_log(signal.SIGTERM, "draining 5 deliveries")
    assert daemon.process is not None
    assert daemon.process.poll() is None  # it waits for them
    daemon.open_gate(*names)
    assert daemon.stop(signal.SIGTERM) == 0
    assert sorted(item["gate"] for item in daemon.records()) == names
    assert not daemon.socket.exists()
    log = daemon.logs()
    assert "SIGTERM received" in log
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO", log, re.MULTILINE)


def test_sigint_drains_too(daemon: Daemon) -> None:
    assert daemon.cli("emit", "slow", "--kw", "seconds:=0.3").returncode == 0
    assert daemon.stop(signal.SIGINT) == 0
    assert daemon.records() == [{"slow": 0.3}]


def test_second_sigint_stops_without_draining(daemon: Daemon) -> None:
    daemon.emit_gates("never")
    daemon.signal_and_wait_for_log(signal.SIGINT, "draining")
    assert daemon.stop(signal.SIGINT, seconds=10) == 130
    assert "1 delivery unfinished at shutdown" in daemon.logs()
    assert not daemon.socket.exists()


def test_emit_during_drain_is_refused_as_shutting_down(daemon: Daemon) -> None:
    daemon.emit_gates("drain")
    daemon.signal_and_wait_for_log(signal.SIGTERM, "draining")
    refused = daemon.cli("emit", "user_created")
    assert refused.returncode == 1
    assert "shutting down" in refused.stderr
    assert daemon.json("status")["draining"] is True
    daemon.open_gate("drain")
    assert daemon.stop() == 0
    assert daemon.records() == [{"gate": "drain"}]


def test_a_second_daemon_on_the_same_socket_is_refused(daemon: Daemon) -> None:
    second = Daemon(daemon.root)
    second.log = daemon.root / "second.log"
    second.start(wait=False)
    assert second.process is not None
    assert second.process.wait(timeout=30) == 1
    assert "another eventbus daemon is already listening on" in second.logs()
    assert "Traceback" not in second.logs()
    assert daemon.cli("emit", "user_created").returncode == 0
    daemon.wait_for_records(1)


def test_a_stale_socket_file_is_replaced(short_dir: Path) -> None:
    run = short_dir / "run"
    run.mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(run / "eb.sock"))
    stale.close()  # the file stays, with nobody listening: what a crash leaves
    daemon = Daemon(short_dir).start()
    try:
        assert daemon.cli("emit", "user_created").returncode == 0
        daemon.wait_for_records(1)
    finally:
        daemon.dispose()


def test_a_file_that_is_not_a_socket_is_left_alone(short_dir: Path) -> None:
    (short_dir / "run").mkdir(mode=0o700)
    (short_dir / "run" / "eb.sock").write_text("precious")
    daemon = Daemon(short_dir).start(wait=False)
    assert daemon.process is not None
    assert daemon.process.wait(timeout=30) == 1
    assert "not a socket" in daemon.logs()
    assert (short_dir / "run" / "eb.sock").read_text() == "precious"


def test_a_socket_directory_others_can_write_is_refused(short_dir: Path) -> None:
    (short_dir / "run").mkdir()
    os.chmod(short_dir / "run", 0o777)
    daemon = Daemon(short_dir).start(wait=False)
    assert daemon.process is not None
    assert daemon.process.wait(timeout=30) == 1
    assert "others can write to its directory" in daemon.logs()
    assert "Traceback" not in daemon.logs()
    assert "chmod 700" in daemon.logs()


def test_a_bad_config_key_stops_start_up_naming_key_and_file(short_dir: Path) -> None:
    daemon = Daemon(short_dir, config="[daemon]\nqueue_sise = 5\n").start(wait=False)
    assert daemon.process is not None
    assert daemon.process.wait(timeout=30) == 1
    log = daemon.logs()
    assert f"{short_dir / 'eventbus.toml'}: daemon.queue_sise: unknown key" in log
    assert "did you mean queue_size?" in log
    assert "Traceback" not in log


def test_a_broken_listener_file_stops_start_up_naming_the_file(short_dir: Path) -> None:
    daemon = Daemon(short_dir)
    (daemon.listeners_dir / "broken.py").write_text("import json\n\nraise ValueError('nope')\n")
    daemon.start(wait=False)
    assert daemon.process is not None
    assert daemon.process.wait(timeout=30) == 1
    log = daemon.logs()
    assert "broken.py, line 3" in log
    assert "ValueError: nope" in log
    assert log.count("Traceback") <= 1  # the listener's own, not the daemon's
    assert not daemon.socket.exists()


def test_config_file_settings_reach_the_daemon(short_dir: Path) -> None:
    config = ('[daemon]\nlisteners_dir = "listeners.d"\nqueue_size = 7\nlog_level = "debug"\n'
              '[delivery]\nretries = 2\ntimeout = 5\n')
    daemon = Daemon(short_dir, config=config).start()
    try:
        status = daemon.json("status")
        assert status["config"] == str(short_dir / "eventbus.toml")
        assert status["queue"]["queue_size"] == 7
        listeners = {item["name"]: item for item in daemon.json("listeners", "list")}
        assert (listeners["recorder:record"]["retries"],
                listeners["recorder:record"]["timeout"]) == (2, 5)
        assert daemon.cli("emit", "nowhere").returncode == 0
        assert daemon.stop() == 0
        assert "DEBUG" in daemon.logs()
    finally:
        daemon.dispose()


def test_log_level_flag_beats_the_config(short_dir: Path) -> None:
    daemon = Daemon(short_dir, config='[daemon]\nlog_level = "debug"\n',
                    extra_args=("--log-level", "warning")).start()
    try:
        assert daemon.stop() == 0
        assert "INFO" not in daemon.logs()
    finally:
        daemon.dispose()


def test_serve_with_a_bad_log_level_is_a_usage_error(short_dir: Path) -> None:
    result = subprocess.run([EVENTBUS, "serve", "--log-level", "loud"], capture_output=True,
                            text=True, timeout=30, cwd=short_dir, check=False)
    assert result.returncode == 2
    assert "--log-level" in result.stderr


def test_bulk_emit_refused_while_draining_says_where_to_resume(daemon: Daemon) -> None:
    daemon.emit_gates("drain")
    lines = "".join(f'{{"event": "bulk.x", "args": [{n}]}}\n' for n in range(3000))
    (daemon.root / "events.jsonl").write_text("\n" + lines)
    daemon.signal_and_wait_for_log(signal.SIGTERM, "draining")
    result = daemon.cli("emit", "--file", "events.jsonl")
    assert result.returncode == 1
    assert result.stdout == "0 of 3000 events accepted: 0 deliveries queued, 0 unrouted\n"
    assert "shutting down" in result.stderr
    assert "line 2 and the lines after it were not accepted" in result.stderr
    daemon.open_gate("drain")
    assert daemon.stop() == 0


def test_a_full_queue_holds_a_bulk_emit_back_until_there_is_room(short_dir: Path) -> None:
    daemon = Daemon(short_dir, config="[daemon]\nqueue_size = 10\nconcurrency = 2\n").start()
    try:
        lines = "".join(f'{{"event": "slow", "kwargs": {{"seconds": 0.005, "n": {n}}}}}\n'
                        for n in range(300))
        result = daemon.cli("emit", "--file", "-", "--json", input=lines)
        assert result.returncode == 0, result.stderr
        assert '"accepted": 300' in result.stdout
        assert len(daemon.wait_for_records(300)) == 300
        assert daemon.json("queue")["succeeded"] == 300
    finally:
        daemon.dispose()


def test_eventbus_stop_drains_and_waits_for_the_daemon_to_exit(daemon: Daemon) -> None:
    daemon.emit_gates("last")
    stopping = subprocess.Popen([EVENTBUS, "stop"], env=daemon.env, stdout=subprocess.PIPE,
                                text=True)
    daemon.wait_for_log("draining 1 delivery")
    assert stopping.poll() is None  # it waits while the daemon drains
    daemon.open_gate("last")
    out, _ = stopping.communicate(timeout=30)
    assert stopping.returncode == 0
    assert out.startswith("stopped (pid ")
    assert daemon.records() == [{"gate": "last"}]
    assert not daemon.socket.exists()


def test_eventbus_stop_no_drain_stops_at_once(daemon: Daemon) -> None:
    daemon.emit_gates("never")
    result = daemon.cli("stop", "--no-drain")
    assert result.returncode == 0, result.stderr
    assert "1 delivery unfinished at shutdown" in daemon.logs()


HUNG = '''
import os, pathlib, time
import anyio
from eventbus_cli import listener

@listener("hang")
async def hang_async():
    pathlib.Path(os.environ["EVENTBUS_TEST_OUT"] + ".async").touch()
    await anyio.sleep_forever()

@listener("hang")
def hang_sync():
    pathlib.Path(os.environ["EVENTBUS_TEST_OUT"] + ".sync").touch()
    time.sleep(3600)
'''


@pytest.mark.parametrize("run", range(3))  # the same every time, not by the signals' order
def test_stop_no_drain_with_hung_listeners_exits_within_5_seconds(
    short_dir: Path, run: int,
) -> None:
    daemon = Daemon(short_dir, listeners=HUNG)
    daemon.start()
    try:
        assert daemon.cli("emit", "hang").returncode == 0
        wait_for(lambda: all(Path(f"{daemon.out}.{kind}").exists() for kind in ("async", "sync")))
        result = daemon.cli("stop", "--no-drain", "--timeout", "5")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("stopped (pid ")
        assert "shutting down without draining: cutting short 2 deliveries" in daemon.logs()
        assert not daemon.socket.exists()
    finally:
        daemon.dispose()


STUBBORN = '''
import anyio, os, pathlib
from eventbus_cli import listener

@listener("stubborn")
async def stubborn():
    pathlib.Path(os.environ["EVENTBUS_TEST_OUT"]).touch()
    while True:  # swallows every cancellation: it never ends by itself
        try:
            await anyio.sleep(10)
        except anyio.get_cancelled_exc_class():
            pass
'''


def test_a_second_sigint_ends_the_process_even_when_a_listener_ignores_cancellation(
    short_dir: Path,
) -> None:
    daemon = Daemon(short_dir, listeners=STUBBORN, config="[daemon]\nshutdown_timeout = 0.2\n")
    daemon.start()
    try:
        assert daemon.cli("emit", "stubborn").returncode == 0
        wait_for(daemon.out.exists)
        daemon.signal_and_wait_for_log(signal.SIGTERM, "draining")
        assert daemon.stop(signal.SIGINT, seconds=30) == 130
        assert "ignored its cancellation" in daemon.logs()
    finally:
        daemon.dispose()


def test_paths_are_fixed_at_start_so_status_survives_its_working_directory(
    short_dir: Path,
) -> None:
    """A daemon started in a checkout, on the default (relative) listeners.d, keeps
    answering `status` and emits after that checkout is deleted under it."""
    work = short_dir / "work"
    work.mkdir()
    daemon = Daemon(work)
    daemon.socket, daemon.out, daemon.log = (short_dir / "eb.sock", short_dir / "out.jsonl",
                                             short_dir / "daemon.log")
    daemon.env.update(EVENTBUS_SOCKET=str(daemon.socket), EVENTBUS_TEST_OUT=str(daemon.out))
    with open(daemon.log, "ab") as log:
        daemon.process = subprocess.Popen([EVENTBUS, "serve"], cwd=work, env=daemon.env,
                                          stdout=log, stderr=log)
    try:
        daemon.wait_ready()
        shutil.rmtree(work)
        daemon.root = short_dir  # where the CLI runs from now
        status = daemon.json("status")
        assert status["listeners_dir"] == str(work / "listeners.d")
        assert daemon.cli("emit", "user_created", "--kw", "email=a@b").returncode == 0
        daemon.wait_for_records(1)
    finally:
        daemon.dispose()


def test_a_wait_cut_short_by_sigterm_is_answered_not_dropped(short_dir: Path) -> None:
    with running(short_dir, config="[daemon]\nshutdown_timeout = 0.5\n") as daemon:
        waiting = subprocess.Popen([EVENTBUS, "emit", "gate", "--kw", "name=w", "--wait",
                                    "--timeout", "60"], cwd=daemon.root, env=daemon.env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        gates = daemon.out.with_name("gates")
        wait_for(lambda: (gates / "w.started").exists() or waiting.poll() is not None,
                 explain=daemon.logs)
        assert daemon.stop(signal.SIGTERM) == 0  # the gate never opens: the drain is cut
        out, err = waiting.communicate(timeout=10)
    assert waiting.returncode == 1, err
    assert "gate: 1 delivery" in out
    assert "unfinished: not finished when the daemon shut down" in out
    assert "the wait cut short" in out
