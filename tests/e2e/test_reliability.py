"""Retries, timeouts, the failed list, reload and drain, through the real daemon and command."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventbus_cli import Client
from eventbus_cli.errors import RemoteError
from tests.harness import EVENTBUS, Daemon, running, started, wait_for

LISTENERS = '''
import json, os, time
from pathlib import Path
import anyio
from eventbus_cli import listener

OUT = os.environ["EVENTBUS_TEST_OUT"]

def record(**fields):
    with open(OUT, "a") as out:
        out.write(json.dumps(fields) + "\\n")

@listener("work", "bulk.*")
async def work(n=0, pause=0.0, **kwargs):
    await anyio.sleep(pause)
    record(event="work", n=n, **kwargs)

@listener("flaky", retries=2, backoff=0.05)
def flaky(key, failures):
    counter = Path(OUT).with_name("attempts-" + key)
    tries = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(tries))
    record(event="attempt", key=key, attempt=tries, at=time.monotonic())
    if tries <= failures:
        raise RuntimeError(f"attempt {tries} fails on purpose")

@listener("hang", timeout=0.2)
async def hang(seconds):
    await anyio.sleep(seconds)
'''


@pytest.fixture
def bus(short_dir: Path) -> Iterator[Daemon]:
    yield from started(short_dir, listeners=LISTENERS)


def _of(daemon: Daemon, event: str) -> list[dict[str, object]]:
    return [item for item in daemon.records() if item.get("event") == event]


def test_retries_wait_out_a_doubling_backoff_then_succeed(bus: Daemon) -> None:
    assert bus.cli("emit", "flaky", "--kw", "key=a", "--kw", "failures:=2").returncode == 0
    wait_for(lambda: len(_of(bus, "attempt")) == 3)
    times = [float(str(item["at"])) for item in _of(bus, "attempt")]
    assert times[1] - times[0] >= 0.05
    assert times[2] - times[1] >= 0.1
    wait_for(lambda: bus.json("queue")["listeners"]["recorder:flaky"]["succeeded"] == 1)
    assert bus.json("queue")["listeners"]["recorder:flaky"]["retried"] == 2
    assert bus.json("queue", "list", "--state", "failed") == []


def test_a_failed_delivery_is_shown_with_its_traceback_and_retried_from_the_cli(
    bus: Daemon,
) -> None:
    bus.cli("emit", "flaky", "--kw", "key=b", "--kw", "failures:=3")
    wait_for(lambda: bus.json("queue", "list", "--state", "failed"))
    [failed] = bus.json("queue", "list", "--state", "failed")
    assert (failed["listener"], failed["attempts"]) == ("recorder:flaky", 3)
    assert failed["error"] == "RuntimeError: attempt 3 fails on purpose"
    shown = bus.json("queue", "show", str(failed["id"]))
    assert "Traceback (most recent call last)" in shown["traceback"]
    assert 'raise RuntimeError(f"attempt {tries} fails on purpose")' in shown["traceback"]
    text = bus.cli("queue", "show", str(failed["id"]))
    assert text.returncode == 0
    assert "fails on purpose" in text.stdout

    retried = bus.cli("queue", "retry", str(failed["id"]))
    assert retried.returncode == 0, retried.stderr
    wait_for(lambda: len(_of(bus, "attempt")) == 4)
    wait_for(lambda: bus.json("queue")["listeners"]["recorder:flaky"]["succeeded"] == 1)
    assert bus.json("queue", "list", "--state", "failed") == []
    again = bus.cli("queue", "retry", str(failed["id"]))
    assert again.returncode == 1
    assert f"delivery {failed['id']}" in again.stderr
    assert bus.cli("queue", "show", "999").returncode == 1


def test_a_listener_past_its_timeout_fails_with_a_timeout_error(bus: Daemon) -> None:
    bus.cli("emit", "hang", "--kw", "seconds:=30")
    wait_for(lambda: bus.json("queue", "list", "--state", "failed"))
    [failed] = bus.json("queue", "list", "--state", "failed")
    assert failed["error"].startswith(
        "TimeoutError: listener recorder:hang did not finish within 0.2s")


def test_retry_all_then_purge_the_failed_list(bus: Daemon) -> None:
    for key in "cde":
        bus.cli("emit", "flaky", "--kw", f"key={key}", "--kw", "failures:=9")
    wait_for(lambda: len(bus.json("queue", "list", "--state", "failed")) == 3)
    assert bus.cli("queue", "retry", "--all").stdout.startswith("3 deliveries queued again")
    wait_for(lambda: len(_of(bus, "attempt")) == 18)
    wait_for(lambda: len(bus.json("queue", "list", "--state", "failed")) == 3)
    refused = bus.cli("queue", "purge", "--failed")  # not a terminal, and no --yes
    assert refused.returncode == 2
    assert "--yes" in refused.stderr
    assert len(bus.json("queue", "list", "--state", "failed")) == 3
    purged = bus.cli("queue", "purge", "--failed", "--yes")
    assert purged.returncode == 0
    assert purged.stdout.startswith("3 failed deliveries purged")
    assert bus.json("queue", "list", "--state", "failed") == []
    assert bus.cli("queue", "retry").returncode == 2
    assert bus.cli("queue", "purge", "--yes").returncode == 2


def test_purge_pending_drops_what_waits_and_lets_running_calls_finish(short_dir: Path) -> None:
    config = "[daemon]\nconcurrency = 5\n"  # at most 2 for one of 3 listeners
    with running(short_dir, listeners=LISTENERS, config=config) as daemon:
        events = "".join(json.dumps({"event": "work", "kwargs": {"n": n, "pause": 0.5}}) + "\n"
                         for n in range(20))
        assert daemon.cli("emit", "--file", "-", input=events).returncode == 0
        wait_for(lambda: daemon.json("queue")["running"] == 2)
        purged = daemon.cli("queue", "purge", "--pending", "--yes")
        assert purged.returncode == 0
        assert purged.stdout.startswith("18 pending deliveries purged")
        wait_for(lambda: len(daemon.records()) == 2)
        assert daemon.stop() == 0
        assert len(daemon.records()) == 2


def test_reload_with_a_broken_file_keeps_the_listeners_that_were_running(bus: Daemon) -> None:
    before = bus.json("listeners", "list")
    (bus.listeners_dir / "broken.py").write_text("from eventbus_cli import listener\n\ndef (:\n")
    result = bus.cli("listeners", "reload")
    assert result.returncode == 1
    assert "broken.py, line 3" in result.stderr
    assert "SyntaxError" in result.stderr
    assert "reload failed" in bus.logs()
    assert "broken.py" in bus.logs()
    assert bus.json("listeners", "list") == before
    check = bus.cli("status", "--check")
    assert check.returncode == 1  # unhealthy until a reload succeeds
    assert "last reload failed" in check.stdout + check.stderr
    assert "broken.py, line 3" in check.stdout + check.stderr
    (bus.listeners_dir / "broken.py").write_text("raise ImportError('no such thing')\n")
    assert "ImportError: no such thing" in bus.cli("listeners", "reload").stderr
    dup = ("from eventbus_cli import listener\n\n@listener('x', name='recorder:work')\n"
           "def w(): ...\n")
    (bus.listeners_dir / "broken.py").write_text(dup)
    clash = bus.cli("listeners", "reload")
    assert clash.returncode == 1
    assert "two listeners are named 'recorder:work'" in clash.stderr
    assert "recorder.py:" in clash.stderr
    assert "broken.py:3" in clash.stderr
    bus.cli("emit", "work", "--kw", "n:=1")
    wait_for(lambda: _of(bus, "work") == [{"event": "work", "n": 1}])
    (bus.listeners_dir / "broken.py").unlink()
    assert bus.cli("listeners", "reload").returncode == 0
    assert bus.cli("status", "--check").returncode == 0


@pytest.mark.process
def test_sighup_loads_a_new_file_and_fails_what_waited_for_a_removed_listener(
    short_dir: Path,
) -> None:
    with running(short_dir, listeners=LISTENERS, config="[daemon]\nconcurrency = 1\n") as daemon:
        new = ("import json, os\nfrom eventbus_cli import listener\n\n@listener('signup')\n"
               "def greet(name):\n    with open(os.environ['EVENTBUS_TEST_OUT'], 'a') as out:\n"
               "        out.write(json.dumps({'event': 'greet', 'name': name}) + '\\n')\n")
        (daemon.listeners_dir / "greet.py").write_text(new)
        daemon.signal_and_wait_for_log(signal.SIGHUP, "reloaded 4 listeners")
        assert "greet:greet" in {item["name"] for item in daemon.json("listeners", "list")}
        daemon.cli("emit", "signup", "--kw", "name=ada")
        wait_for(lambda: _of(daemon, "greet") == [{"event": "greet", "name": "ada"}])

        # One worker: the first `work` runs (on the code it started with), two wait.
        for n in range(3):
            daemon.cli("emit", "work", "--kw", f"n:={n}", "--kw", "pause:=1")
        wait_for(lambda: daemon.json("queue")["running"] == 1)
        renamed = LISTENERS.replace('@listener("work", "bulk.*")\nasync def work(',
                                    '@listener("work", "bulk.*")\nasync def labour(')
        (daemon.listeners_dir / "recorder.py").write_text(renamed)
        reloaded = daemon.json("listeners", "reload")
        assert (reloaded["added"], reloaded["removed"], reloaded["failed"]) == (
            ["recorder:labour"], ["recorder:work"], 2)
        failed = daemon.json("queue", "list", "--state", "failed")
        assert [item["kwargs"]["n"] for item in failed] == [2, 1]  # newest first
        assert all("removed by a reload" in item["error"] for item in failed)
        wait_for(lambda: _of(daemon, "work") == [{"event": "work", "n": 0}])
        retry = daemon.cli("queue", "retry", str(failed[0]["id"]))
        assert retry.returncode == 1
        assert "listener recorder:work is not loaded" in retry.stderr


def test_sigterm_during_a_load_runs_every_accepted_event_then_exits_0(short_dir: Path) -> None:
    with running(short_dir, listeners=LISTENERS, config="[daemon]\nconcurrency = 8\n") as daemon:
        accepted: list[int] = []
        refusals: list[str] = []

        def produce() -> None:
            with Client(daemon.socket) as client:
                for n in range(100_000):
                    try:
                        client.emit("work", n=n, pause=0.01)
                    except RemoteError as exc:
                        refusals.append(exc.code)
                        return
                    accepted.append(n)

        producer = threading.Thread(target=produce)
        producer.start()
        wait_for(lambda: len(accepted) > 300)
        assert daemon.stop() == 0
        producer.join(timeout=30)
        assert not producer.is_alive()
        assert refusals == ["shutting_down"]
        done = sorted(int(str(item["n"])) for item in _of(daemon, "work"))
        assert done == accepted
        assert not daemon.socket.exists()
        assert "unfinished" not in daemon.logs()


@pytest.mark.process  # a load: the clients and the daemon each need a core
def test_16_clients_pipelining_2000_emits_each_make_exactly_32000_deliveries(
    bus: Daemon,
) -> None:
    answered: dict[int, list[dict[str, object]]] = {}

    def client(number: int) -> None:
        lines = b"".join(
            json.dumps({"id": n, "op": "emit", "event": "bulk.load",
                        "kwargs": {"c": number, "n": n}}).encode() + b"\n"
            for n in range(2000)
        )
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(60)
            sock.connect(str(bus.socket))
            sender = threading.Thread(target=sock.sendall, args=(lines,))
            sender.start()
            replies = _read_lines(sock, 2000)
            sender.join(timeout=60)
        answered[number] = [json.loads(line) for line in replies]

    threads = [threading.Thread(target=client, args=(number,)) for number in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    for replies in answered.values():
        assert [(reply["id"], reply["ok"]) for reply in replies] == [(n, True) for n in range(2000)]
    assert len(answered) == 16
    records = bus.wait_for_records(32_000, seconds=60)
    seen = {(item["c"], item["n"]) for item in records}
    assert len(records) == len(seen) == 32_000
    wait_for(lambda: bus.json("queue")["succeeded"] == 32_000)


def _read_lines(sock: socket.socket, count: int) -> list[bytes]:
    buffer = b""
    while buffer.count(b"\n") < count:
        data = sock.recv(1 << 16)
        if not data:
            break
        buffer += data
    return buffer.splitlines()


def test_a_drain_cut_short_in_memory_mode_logs_what_was_lost(short_dir: Path) -> None:
    config = "[daemon]\nconcurrency = 5\nshutdown_timeout = 0.2\n"
    with running(short_dir, listeners=LISTENERS, config=config) as daemon:
        for n in range(5):
            daemon.cli("emit", "work", "--kw", f"n:={n}", "--kw", "pause:=30")
        assert daemon.stop() == 0
        # 3 listeners share 5 workers: work runs at most 2 calls at once.
        assert ("5 deliveries unfinished at shutdown are lost (no journal) (2 of them were "
                "running and were cut short, so they may have done part of their work; the "
                "others never started): ") in daemon.logs()
        assert all(f"{n} (work -> recorder:work)" in daemon.logs() for n in range(1, 6))


RAISERS = '''
import asyncio, json, os
from eventbus_cli import listener

class Custom(BaseException):
    pass

def record(n):
    with open(os.environ["EVENTBUS_TEST_OUT"], "a") as out:
        out.write(json.dumps({"n": n}) + "\\n")

@listener("cancelled", retries=1, backoff=0)
async def cancelled():
    raise asyncio.CancelledError("raised by the listener itself")

@listener("interrupt")
def interrupt():
    raise KeyboardInterrupt

@listener("interrupt_async")
async def interrupt_async():
    raise KeyboardInterrupt

@listener("generator_exit")
def generator_exit():
    raise GeneratorExit

@listener("custom")
async def custom():
    raise Custom("a BaseException of its own")

@listener("work")
async def work(n):
    record(n)
'''
RAISED = ("cancelled", "interrupt", "interrupt_async", "generator_exit", "custom")


@pytest.mark.process
def test_a_listener_that_raises_any_base_exception_fails_only_its_delivery(
    short_dir: Path,
) -> None:
    with running(short_dir, listeners=RAISERS, config="[journal]\n") as daemon:
        lines = "".join(f'{{"event": "{event}"}}\n' for event in RAISED)
        lines += "".join(f'{{"event": "work", "args": [{n}]}}\n' for n in range(200))
        assert daemon.cli("emit", "--file", "-", input=lines).returncode == 0
        assert len(daemon.wait_for_records(200)) == 200
        wait_for(lambda: len(daemon.json("queue", "list", "--state", "failed")) == 5)
        failed = {item["listener"].partition(":")[2]: item
                  for item in daemon.json("queue", "list")}
        assert set(failed) == set(RAISED)
        assert failed["cancelled"]["attempts"] == 2  # retried, as its options say
        assert failed["custom"]["error"].endswith("Custom: a BaseException of its own")
        assert daemon.process is not None
        assert daemon.process.poll() is None
        assert daemon.stop() == 0
        daemon.start()  # with the journal: no poison message on the way back
        assert daemon.json("queue")["pending"] == 0
        assert len(daemon.json("queue", "list", "--state", "failed")) == 5
        assert daemon.cli("emit", "work", "--arg", ":=200").returncode == 0
        assert len(daemon.wait_for_records(201)) == 201
        assert daemon.stop() == 0


def _connect(daemon: Daemon) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(15)
    sock.connect(str(daemon.socket))
    return sock


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_running_out_of_file_descriptors_is_survived(short_dir: Path) -> None:
    config = "[daemon]\nmax_connections = 1000\n"
    with running(short_dir, config=config, max_files=64) as daemon:
        held = []
        try:
            for _ in range(80):  # more than the daemon has descriptors for
                held.append(_connect(daemon))
            daemon.wait_for_log("cannot accept a connection")
        finally:
            for sock in held:
                sock.close()
        wait_for(lambda: daemon.cli("emit", "user_created", "--kw", "n:=1").returncode == 0)
        assert daemon.wait_for_records(1)
        assert daemon.process is not None
        assert daemon.process.poll() is None


def test_one_connection_past_max_connections_is_told_busy(short_dir: Path) -> None:
    with running(short_dir, config="[daemon]\nmax_connections = 3\n") as daemon:
        held = [_connect(daemon) for _ in range(3)]
        try:
            for sock in held:  # each is served: the daemon has counted it
                sock.sendall(b'{"id": 1, "op": "hello"}\n')
                assert json.loads(sock.recv(65536))["ok"] is True
            refused = daemon.cli("status")
            assert refused.returncode == 1
            assert "[busy]" in refused.stderr
            assert "max_connections" in refused.stderr
        finally:
            for sock in held:
                sock.close()
        wait_for(lambda: daemon.cli("status").returncode == 0)


def test_a_connection_with_no_complete_request_is_closed_after_idle_timeout(
    short_dir: Path,
) -> None:
    with running(short_dir, config="[daemon]\nidle_timeout = 0.5\n") as daemon:
        with _connect(daemon) as silent, _connect(daemon) as dribbling:
            dribbling.sendall(b'{"id": 1, "op": "hel')  # half a request, never finished
            for sock in (silent, dribbling):
                [line] = _read_all(sock).splitlines()
                assert json.loads(line)["error"]["code"] == "idle"
        # A waiting emit and a subscriber are exempt: both outlive the timeout.
        waiting = subprocess.Popen([EVENTBUS, "emit", "gate", "--kw", "name=long", "--wait"],
                                   env=daemon.env, stdout=subprocess.PIPE, text=True)
        with _connect(daemon) as subscriber:
            subscriber.sendall(b'{"id": 1, "op": "subscribe", "patterns": ["gate"]}\n')
            received = subscriber.recv(65536)
            assert b"subscribed" in received
            gates = daemon.out.with_name("gates")
            wait_for(lambda: (gates / "long.started").exists())
            with _connect(daemon) as clock:  # its idle error: the timeout has passed since
                assert b'"idle"' in _read_all(clock)
            daemon.open_gate("long")
            out, _ = waiting.communicate(timeout=30)
            assert waiting.returncode == 0, out
            assert "gate: ok" in out
            while b'"type":"ok"' not in received:  # the subscription still streams
                chunk = subscriber.recv(65536)
                assert chunk, received
                received += chunk


@pytest.mark.process
@pytest.mark.parametrize("raised", ["KeyboardInterrupt", "SystemExit(3)", "GeneratorExit"])
def test_a_listener_file_that_raises_at_import_is_a_failed_reload(
    bus: Daemon, raised: str
) -> None:
    before = bus.json("listeners", "list")
    (bus.listeners_dir / "rude.py").write_text(f"raise {raised}\n")
    result = bus.cli("listeners", "reload")
    assert result.returncode == 1
    assert "rude.py, line 1" in result.stderr
    assert raised.partition("(")[0] in result.stderr
    assert bus.process is not None
    bus.process.send_signal(signal.SIGHUP)  # the same file through SIGHUP
    bus.wait_for_log("reload failed", seconds=15)
    assert bus.json("listeners", "list") == before
    assert bus.process.poll() is None


def test_a_slow_listener_file_does_not_hold_up_other_clients(bus: Daemon) -> None:
    started, gate = bus.out.with_name("import.started"), bus.out.with_name("import.open")
    (bus.listeners_dir / "slow_import.py").write_text(
        "import pathlib, time\n"
        f"pathlib.Path({str(started)!r}).touch()\n"
        f"while not pathlib.Path({str(gate)!r}).exists():\n"
        "    time.sleep(0.01)\n"
    )
    reload = subprocess.Popen([EVENTBUS, "listeners", "reload"], env=bus.env,
                              stdout=subprocess.PIPE, text=True)
    try:
        wait_for(started.exists)  # the reload is importing the file
        assert bus.cli("emit", "work", "--kw", "n:=1").returncode == 0  # answered meanwhile
        wait_for(lambda: _of(bus, "work") == [{"event": "work", "n": 1}])
        assert reload.poll() is None  # the reload is still importing
    finally:
        gate.touch()
    out, _ = reload.communicate(timeout=30)
    assert reload.returncode == 0, out


HUNG = '''
import os, pathlib, time
from eventbus_cli import listener

@listener("hung", timeout=0.2)
def hung(n):
    gate = pathlib.Path(os.environ["EVENTBUS_TEST_OUT"]).with_name("release")
    while not gate.exists():  # a sync call nothing can interrupt
        time.sleep(0.01)
'''


def _threads_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith("Threads:")))


@pytest.mark.process
def test_hung_sync_listeners_cannot_pile_up_threads(short_dir: Path) -> None:
    config = "[daemon]\nmax_threads = 3\n"
    with running(short_dir, listeners=HUNG, config=config) as daemon:
        assert daemon.process is not None
        before = _threads_of(daemon.process.pid)
        for n in range(20):
            assert daemon.cli("emit", "hung", "--kw", f"n:={n}").returncode == 0
        wait_for(lambda: daemon.json("status")["threads"]["stuck"] == 3)
        wait_for(lambda: len(daemon.json("queue", "list", "--state", "failed")) >= 10)
        assert _threads_of(daemon.process.pid) <= before + 3
        sick = daemon.cli("status", "--check")
        assert sick.returncode == 1
        assert "3 sync calls ran past their timeout" in sick.stdout
        daemon.out.with_name("release").touch()
        wait_for(lambda: daemon.json("status")["threads"]["stuck"] == 0)
        assert daemon.stop() == 0


@pytest.mark.process
def test_sigterm_ends_the_process_within_shutdown_timeout_despite_a_hung_thread(
    short_dir: Path,
) -> None:
    config = "[daemon]\nshutdown_timeout = 0.5\n"
    with running(short_dir, listeners=HUNG, config=config) as daemon:
        assert daemon.cli("emit", "hung", "--kw", "n:=1").returncode == 0
        wait_for(lambda: daemon.json("status")["threads"]["stuck"] == 1)
        # The call never returns (the test never touches "release"): exit must not wait for it.
        daemon.stop(seconds=10)
        logs = daemon.logs()
        assert "stopped" in logs.splitlines()[-1], logs


BIG = '''
from eventbus_cli import listener

@listener("big")
async def big(body):
    pass
'''


def test_waiting_events_are_bounded_by_bytes_too(short_dir: Path) -> None:
    config = "[daemon]\nmax_queue_bytes = 65536\nconcurrency = 1\n"
    listeners = Daemon(short_dir).listeners_dir  # the gate listener, to hold the one worker
    (listeners / "big.py").write_text(BIG)
    (short_dir / "20k.txt").write_text("x" * 20_000)
    (short_dir / "70k.txt").write_text("x" * 70_000)
    with running(short_dir, config=config) as daemon:
        daemon.emit_gates("held")
        for _ in range(3):
            assert daemon.cli("emit", "big", "body=@20k.txt").returncode == 0
        queue = daemon.json("queue")
        assert queue["max_queue_bytes"] == 65536
        assert queue["pending"] == 3
        assert 60_000 < queue["queued_bytes"] <= 65536
        refused = daemon.cli("emit", "big", "body=@70k.txt")
        assert refused.returncode == 1
        assert "max_queue_bytes" in refused.stderr
        assert "queue_full" in refused.stderr
        daemon.open_gate("held")
        wait_for(lambda: daemon.json("queue")["succeeded"] == 4)
        assert daemon.json("queue")["queued_bytes"] == 0


def test_an_emit_that_waited_for_bytes_in_vain_names_max_queue_bytes(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("eventbus_cli.daemon.intake.QUEUE_WAIT_SECONDS", 0.2)  # in-process
    config = "[daemon]\nmax_queue_bytes = 65536\nconcurrency = 1\n"
    listeners = Daemon(short_dir).listeners_dir
    (listeners / "big.py").write_text(BIG)
    (short_dir / "20k.txt").write_text("x" * 20_000)
    with running(short_dir, config=config) as daemon:
        daemon.emit_gates("held")
        for _ in range(3):
            assert daemon.cli("emit", "big", "body=@20k.txt").returncode == 0
        refused = daemon.cli("emit", "big", "body=@20k.txt")  # fits alone: waits, in vain
        assert refused.returncode == 1
        assert "found no room within 0.2s" in refused.stderr
        assert "raise max_queue_bytes" in refused.stderr
        daemon.open_gate("held")


def test_a_list_reply_is_bounded_by_bytes_and_says_what_it_left_out(short_dir: Path) -> None:
    config = "[daemon]\nconcurrency = 1\n"
    listeners = Daemon(short_dir).listeners_dir
    (listeners / "big.py").write_text(BIG)
    (short_dir / "900k.txt").write_text("x" * 900_000)
    with running(short_dir, config=config) as daemon:
        daemon.emit_gates("held")
        for _ in range(20):  # 18 MB waiting: more than a list reply holds
            assert daemon.cli("emit", "big", "body=@900k.txt").returncode == 0
        listed = daemon.cli("queue", "list", "--state", "pending", "--json")
        shown = json.loads(listed.stdout)
        assert 10 < len(shown) < 20
        assert shown[0]["id"] > shown[-1]["id"]  # the newest first
        assert f"the newest {len(shown)} of 20 pending deliveries" in listed.stderr
        daemon.open_gate("held")


def test_a_journal_that_cannot_be_written_still_answers_and_says_so(short_dir: Path) -> None:
    config = '[daemon]\nconcurrency = 1\n[journal]\npath = "journal.db"\n'
    (short_dir / "100k.txt").write_text("x" * 100_000)
    daemon = Daemon(short_dir, config=config, max_file_bytes=1 << 20)
    daemon.start()
    try:
        daemon.emit_gates("held")  # what follows waits, so it is written to the journal
        for _ in range(40):
            emitted = daemon.cli("emit", "user_created", "body=@100k.txt")
            if emitted.returncode != 0:
                break
        assert emitted.returncode == 1, "the journal never filled up"
        assert "journal" in emitted.stderr
        assert "check before you repeat it" in emitted.stderr
        # reads keep working, and say what is wrong
        assert daemon.cli("listeners", "list").returncode == 0
        status = daemon.json("status")
        assert status["journal"]["writable"] is False
        assert status["journal"]["error"]
        assert daemon.json("queue")["pending"] >= 1
        text = daemon.cli("status")
        assert "cannot be written" in text.stdout or "not writable" in text.stdout, text.stdout
    finally:
        daemon.dispose()
