"""Watching and scripting the bus: tail, emit --wait, status --check, systemd notify, watch."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import signal
import socket
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import EVENTBUS, Daemon, running, wait_for


class Tail:
    """`eventbus tail --json` as a subprocess; a thread collects its records as they come."""

    def __init__(self, daemon: Daemon, *patterns: str, stderr: Any = None) -> None:
        self.process = subprocess.Popen([EVENTBUS, "tail", *patterns, "--json"],
                                        env=daemon.env, stdout=subprocess.PIPE, stderr=stderr,
                                        text=True)
        self.records: list[dict[str, Any]] = []
        self.probe: str | None = None
        self._reader = threading.Thread(target=self._collect)
        self._reader.start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            record = json.loads(line)
            if self.probe is None or record.get("event") != self.probe or not self.records:
                self.records.append(record)  # a probe after the first one seen is dropped

    def read(self, count: int) -> list[dict[str, Any]]:
        wait_for(lambda: len(self.records) >= count, explain=lambda: str(self.records))
        return self.records

    def start(self, daemon: Daemon, probe: str) -> Tail:
        """Emit ``probe`` until the tail shows it: from then on, the subscription is live.
        The probes emitted meanwhile that show up later are dropped."""
        self.probe = probe
        for _ in range(200):
            daemon.cli("emit", probe)
            if self.records:
                break
            time.sleep(0.05)
        self.read(1)
        return self

    def close(self) -> int:
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return code


@pytest.fixture
def tail(daemon: Daemon) -> Iterator[Tail]:
    follower = Tail(daemon).start(daemon, "probe")
    yield follower
    follower.close()


def test_tail_shows_each_event_and_each_delivery_outcome(daemon: Daemon, tail: Tail) -> None:
    assert tail.records[0]["type"] == "emitted"
    assert (tail.records[0]["event"], tail.records[0]["deliveries"]) == ("probe", 0)
    daemon.cli("emit", "user_created", "--kw", "email=x", "--wait")  # then one at a time
    daemon.cli("emit", "boom")
    records = tail.read(7)[1:7]
    kinds = [(r["type"], r["event"], r.get("listener")) for r in records]
    assert kinds == [
        ("emitted", "user_created", None), ("started", "user_created", "recorder:record"),
        ("ok", "user_created", "recorder:record"), ("emitted", "boom", None),
        ("started", "boom", "recorder:explode"), ("failed", "boom", "recorder:explode"),
    ]
    failed = records[-1]
    assert failed["error"] == "RuntimeError: listener exploded on purpose"
    assert failed["attempt"] == 1
    assert isinstance(failed["latency"], float)
    stamp = records[0]["timestamp"]
    assert len(stamp.split(".")[1].split("+")[0]) == 6  # microseconds
    assert tail.close() == 0


def test_tail_patterns_filter_events(daemon: Daemon) -> None:
    follower = Tail(daemon, "bulk.*", "nothing").start(daemon, "nothing")
    try:
        daemon.cli("emit", "user_created", "--kw", "email=x")
        daemon.cli("emit", "bulk.one")
        wait_for(lambda: [r["type"] for r in follower.records if r["event"] == "bulk.one"] == [
            "emitted", "started", "ok"])
        assert {r["event"] for r in follower.records} == {"nothing", "bulk.one"}
    finally:
        follower.close()


@pytest.mark.process  # a load: the clients and the daemon each need a core
def test_a_stalled_tail_loses_records_not_speed_and_is_told_how_many(daemon: Daemon) -> None:
    reader = socket.socket(socket.AF_UNIX)
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader.connect(str(daemon.socket))
    reader.sendall(b'{"id": 1, "op": "subscribe", "patterns": ["bulk.*"]}\n')
    events = 20_000
    lines = "".join(f'{{"event": "bulk.x", "args": [{n}]}}\n' for n in range(events))
    assert daemon.cli("emit", "--file", "-", input=lines).returncode == 0
    wait_for(lambda: daemon.json("queue")["succeeded"] == events, 60)
    assert daemon.json("status")["listeners"] == 4  # still answering while the reader stalls

    reader.settimeout(2)
    received = b""
    try:
        while chunk := reader.recv(1 << 16):
            received += chunk
    except TimeoutError:
        pass
    reader.close()
    reply, *records = (json.loads(line) for line in received.splitlines())
    assert reply == {"id": 1, "ok": True, "result": {"subscribed": True}}
    skipped = sum(r["count"] for r in records if r["type"] == "skipped")
    assert skipped > 0
    kept = [r for r in records if r["type"] != "skipped"]
    assert len(kept) + skipped == 3 * events  # emitted, started, ok: each kept or counted


def test_emit_wait_prints_each_outcome_and_exits_1_on_a_failure(daemon: Daemon) -> None:
    ok = daemon.cli("emit", "user_created", "--kw", "email=x", "--wait")
    assert ok.returncode == 0
    assert "recorder:record: ok" in ok.stdout
    failed = daemon.cli("emit", "boom", "--wait")
    assert failed.returncode == 1
    assert "recorder:explode: failed: RuntimeError: listener exploded on purpose" in failed.stdout
    shown = re.search(r"\(delivery (\d+): `eventbus queue show (\d+)` has its traceback\)",
                      failed.stdout)
    assert shown is not None, failed.stdout
    assert shown.group(1) == shown.group(2)
    assert daemon.cli("queue", "show", shown.group(1)).returncode == 0
    document = daemon.cli("emit", "boom", "--wait", "--json")
    assert document.returncode == 1
    result = json.loads(document.stdout)
    assert result["deliveries"] == 1
    assert [(r["listener"], r["ok"], r["error"]) for r in result["results"]] == [
        ("recorder:explode", False, "RuntimeError: listener exploded on purpose")]
    late = daemon.cli("emit", "slow", "--kw", "seconds:=5", "--wait", "--timeout", "0.2")
    assert late.returncode == 1
    assert "slow: unfinished: not finished within 0.2s" in late.stdout
    assert daemon.cli("emit", "boom", "--timeout", "1").returncode == 2  # needs --wait


def test_require_listener_refuses_an_unrouted_event(daemon: Daemon) -> None:
    refused = daemon.cli("emit", "nobody_listens", "--require-listener")
    assert refused.returncode == 1
    assert "no listener matches event 'nobody_listens', so it was not emitted" in refused.stderr
    assert daemon.json("queue")["unrouted"] == 0
    assert daemon.cli("emit", "user_created", "--kw", "email=x",
                      "--require-listener").returncode == 0
    assert daemon.cli("emit", "nobody_listens").returncode == 0  # without it: accepted
    assert daemon.json("queue")["unrouted"] == 1


def test_status_check_exit_codes(short_dir: Path) -> None:
    config = "[daemon]\nqueue_size = 2\nconcurrency = 1\n"
    with running(short_dir, config=config) as daemon:
        healthy = daemon.cli("status", "--check")
        assert healthy.returncode == 0
        assert healthy.stdout.startswith("healthy: 4 listeners")
        assert len(healthy.stdout.splitlines()) == 1
        daemon.cli("emit", "boom")
        wait_for(lambda: daemon.json("queue")["failed"] == 1)
        sick = daemon.cli("status", "--check")
        assert sick.returncode == 1
        assert sick.stdout.startswith("unhealthy: 1 delivery failed in the last 60s")
        for _ in range(3):
            daemon.cli("emit", "slow", "--kw", "seconds:=30")
        full = daemon.cli("status", "--check", "--json")
        assert full.returncode == 1
        assert "queue full: 2 of 2 deliveries waiting" in json.loads(full.stdout)["problems"]
        daemon.dispose()
        gone = daemon.cli("status", "--check")
        assert gone.returncode == 3
        assert "eventbus serve" in gone.stderr


@pytest.mark.process
def test_systemd_hears_ready_reloading_and_stopping(short_dir: Path) -> None:
    path = short_dir / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(str(path))
        systemd.settimeout(15)
        daemon = Daemon(short_dir)
        daemon.env["NOTIFY_SOCKET"] = str(path)
        daemon.start()
        try:
            assert systemd.recv(4096) == b"READY=1"
            assert systemd.recv(4096).decode().startswith("STATUS=serving 4 listeners")
            assert daemon.process is not None
            daemon.process.send_signal(signal.SIGHUP)
            reloading = systemd.recv(4096).decode().split("\n")
            assert reloading[0] == "RELOADING=1"
            assert reloading[1].startswith("MONOTONIC_USEC=")
            assert systemd.recv(4096) == b"READY=1"
            assert daemon.stop() == 0
            assert systemd.recv(4096) == b"STOPPING=1"
        finally:
            daemon.dispose()


def test_queue_watch_draws_live_and_leaves_on_ctrl_c(daemon: Daemon) -> None:
    daemon.cli("emit", "user_created", "--kw", "email=x")
    pid, terminal = pty.fork()
    if pid == 0:  # the child: the command, on a pseudo-terminal 200 columns wide
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
        os.execve(EVENTBUS, [EVENTBUS, "queue", "--watch", "--interval", "0.2"], daemon.env)
    screen = b""
    deadline = time.monotonic() + 15
    while b"per second" not in screen and time.monotonic() < deadline:
        screen += os.read(terminal, 65536)
    os.kill(pid, signal.SIGINT)
    while True:
        try:
            chunk = os.read(terminal, 65536)
        except OSError:  # the child is gone
            break
        if not chunk:
            break
        screen += chunk
    _, status = os.waitpid(pid, 0)
    os.close(terminal)
    assert b"per second" in screen
    assert b"record" in screen
    assert os.waitstatus_to_exitcode(status) == 0
    assert b"Traceback" not in screen


def test_shell_completion_offers_the_daemons_event_ids(daemon: Daemon) -> None:
    env = {**daemon.env, "_EVENTBUS_COMPLETE": "complete_bash", "COMP_WORDS": "eventbus emit u",
           "COMP_CWORD": "2"}
    result = subprocess.run([EVENTBUS], env=env, capture_output=True, text=True, timeout=30,
                            check=False)
    assert result.stdout.split() == ["user_created"]
    globs = {**env, "COMP_WORDS": "eventbus emit bul"}  # bulk.* cannot be emitted
    result = subprocess.run([EVENTBUS], env=globs, capture_output=True, text=True, timeout=30,
                            check=False)
    assert result.stdout.split() == []
    elsewhere = {key: value for key, value in env.items() if key != "EVENTBUS_SOCKET"}
    elsewhere.update(COMP_WORDS=f"eventbus --socket {daemon.socket} emit u", COMP_CWORD="4")
    result = subprocess.run([EVENTBUS], env=elsewhere, capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.stdout.split() == ["user_created"]  # the global --socket is honoured
    states = {**env, "COMP_WORDS": "eventbus queue list --state ", "COMP_CWORD": "4"}
    result = subprocess.run([EVENTBUS], env=states, capture_output=True, text=True, timeout=30,
                            check=False)
    assert result.stdout.split() == ["pending", "running", "retrying", "scheduled", "failed"]


def test_a_subscriber_that_leaves_ends_its_subscription_quietly(daemon: Daemon) -> None:
    for _ in range(5):
        with socket.socket(socket.AF_UNIX) as reader:
            reader.connect(str(daemon.socket))
            reader.sendall(b'{"id": 1, "op": "subscribe"}\n')
            reader.recv(100)
            lines = "".join('{"event": "bulk.x"}\n' for _ in range(200))
            daemon.cli("emit", "--file", "-", input=lines)
    wait_for(lambda: daemon.json("queue")["succeeded"] == 1000)
    assert daemon.cli("status", "--check").returncode == 0
    assert "Traceback" not in daemon.logs()
    assert "connection failed" not in daemon.logs()


def test_subscribe_spelled_with_a_json_escape_is_still_a_subscription(daemon: Daemon) -> None:
    with socket.socket(socket.AF_UNIX) as reader:
        reader.settimeout(10)
        reader.connect(str(daemon.socket))
        reader.sendall(b'{"id": "s", "op": "subscrib\\u0065", "patterns": ["bulk.*"]}\n')
        assert json.loads(reader.recv(100)) == {"id": "s", "ok": True,
                                                "result": {"subscribed": True}}
        daemon.cli("emit", "bulk.z")
        received = b""
        while received.count(b"\n") < 3:
            received += reader.recv(4096)
        assert [json.loads(line)["type"] for line in received.splitlines()] == [
            "emitted", "started", "ok"]


def test_tail_and_queue_watch_follow_the_daemon_across_a_restart(daemon: Daemon) -> None:
    errors = daemon.root / "tail.err"
    with errors.open("w") as stderr:
        follower = Tail(daemon, stderr=stderr).start(daemon, "probe")
        watcher = subprocess.Popen([EVENTBUS, "queue", "--watch", "--interval", "0.1", "--json"],
                                   env=daemon.env, stdout=subprocess.PIPE, stderr=stderr,
                                   text=True)
        try:
            assert watcher.stdout is not None
            assert "queue_size" in json.loads(watcher.stdout.readline())
            daemon.stop()
            wait_for(lambda: errors.read_text().count("the daemon went away") == 2,
                     explain=errors.read_text)
            assert follower.process.poll() is None  # waiting for it, as tail -F
            daemon.start()
            wait_for(lambda: errors.read_text().count("the daemon answers again") == 2,
                     explain=errors.read_text)
            # Connected is not yet subscribed: emit until the tail shows one.
            wait_for(lambda: daemon.cli("emit", "user_created", "email=b@x").returncode == 0
                     and any(r.get("event") == "user_created" for r in follower.records))
            assert "queue_size" in json.loads(watcher.stdout.readline())  # its lines go on
        finally:
            watcher.send_signal(signal.SIGINT)
            assert watcher.wait(timeout=10) == 0
            assert watcher.stdout is not None
            watcher.stdout.close()
            assert follower.close() == 0


def test_emit_wait_into_a_full_queue_waits_for_room_first(short_dir: Path) -> None:
    with running(short_dir, config="[daemon]\nqueue_size = 1\nconcurrency = 1\n") as daemon:
        for _ in range(2):  # one runs, one waits: the queue is full
            daemon.cli("emit", "slow", "--kw", "seconds:=0.5")
        waited = daemon.cli("emit", "user_created", "--kw", "email=x", "--wait")
        assert waited.returncode == 0, waited.stderr
        assert "record: ok" in waited.stdout


def test_health_and_the_queue_follow_the_failed_list(daemon: Daemon) -> None:
    daemon.cli("emit", "boom")
    wait_for(lambda: daemon.json("queue")["failed_list"] == 1)
    assert daemon.cli("status", "--check").returncode == 1
    assert "failed list 1" in daemon.cli("queue").stdout
    assert daemon.cli("queue", "purge", "--failed", "--yes").returncode == 0
    healthy = daemon.cli("status", "--check")
    assert healthy.returncode == 0, healthy.stdout  # the purged failure no longer counts
    queue = daemon.json("queue")
    assert (queue["failed"], queue["failed_list"]) == (1, 0)  # since start, and held now


def test_deliveries_a_reload_fails_are_counted_and_make_the_daemon_unhealthy(
    short_dir: Path,
) -> None:
    with running(short_dir, config="[daemon]\nconcurrency = 1\n") as daemon:
        daemon.emit_gates("hold")  # the only worker: what follows waits
        for _ in range(3):
            assert daemon.cli("emit", "slow", "--kw", "seconds:=0").returncode == 0
        source = daemon.listeners_dir / "recorder.py"
        source.write_text(source.read_text().replace('@listener("slow")\n', ""))
        assert daemon.cli("listeners", "reload").returncode == 0
        queue = daemon.json("queue")
        assert (queue["failed"], queue["failed_list"]) == (3, 3)
        sick = daemon.cli("status", "--check")
        assert sick.returncode == 1
        assert "3 deliveries failed" in sick.stdout
        daemon.open_gate("hold")


def test_queue_watch_piped_prints_a_line_per_interval(daemon: Daemon) -> None:
    for as_json in (True, False):
        args = [EVENTBUS, "queue", "--watch", "--interval", "0.1", *(["--json"] * as_json)]
        watcher = subprocess.Popen(args, env=daemon.env, stdout=subprocess.PIPE, text=True)
        try:
            assert watcher.stdout is not None
            lines = [watcher.stdout.readline() for _ in range(3)]
        finally:
            watcher.send_signal(signal.SIGINT)
            assert watcher.wait(timeout=10) == 0
            assert watcher.stdout is not None
            watcher.stdout.close()
        if as_json:
            assert all(json.loads(line)["queue_size"] == 10_000 for line in lines)
        else:
            assert all(line.startswith("pending=0 running=0") for line in lines), lines
    alone = daemon.cli("queue", "--interval", "2")
    assert alone.returncode == 2
    assert "--interval goes with --watch" in alone.stderr


def test_tail_says_on_stderr_what_it_follows_then_follows_it(daemon: Daemon) -> None:
    with subprocess.Popen([EVENTBUS, "tail", "user_*", "--json"], env=daemon.env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        said: list[str] = []
        out: list[str] = []
        readers = [threading.Thread(target=lambda s=stream, into=into: into.extend(s))
                   for stream, into in ((process.stderr, said), (process.stdout, out))]
        for reader in readers:
            reader.start()
        try:
            wait_for(lambda: said, explain=lambda: "tail said nothing on stderr")
            assert said[0] == (f"following events matching 'user_*' on {daemon.socket} "
                               "(Ctrl-C to stop)\n")
            daemon.cli("emit", "user_created", "email=x")  # subscribed once it said so
            wait_for(lambda: len(out) >= 1)
            assert json.loads(out[0])["event"] == "user_created"
        finally:
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=10) == 0
            for reader in readers:
                reader.join(timeout=10)


@pytest.mark.parametrize("pattern", ["[", "user_[ab", "a[]"])
def test_tail_refuses_a_pattern_that_could_match_nothing(daemon: Daemon, pattern: str) -> None:
    result = daemon.cli("tail", pattern)
    assert result.returncode == 2
    said = " ".join(re.sub("[│╭╮╰╯─]", " ", result.stderr).split())  # out of rich's box
    assert f"invalid event pattern {pattern!r}" in said
    assert "each [ needs a ] after it" in said
