"""N daemons on one shared store, each test on Redis and on PostgreSQL: a real redis-server
and a real PostgreSQL cluster, real daemons, the real `eventbus` command.

"Hosts" are daemons with their own socket, directory and ``[backend] name`` on one store
and prefix (a Redis key prefix, a PostgreSQL schema). Listeners note each delivery (id,
attempt, daemon) through current_delivery(), so the tests count losses and duplicates
exactly.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import EVENTBUS, Daemon, short_directory, wait_for
from tests.postgres_server import PostgresServer, find_binaries, new_schema
from tests.redis_server import RedisServer, find_server, new_prefix

pytestmark = [pytest.mark.timeout(120), pytest.mark.process]  # daemons side by side, kill -9

NOTE = '''
import json, os, time
from eventbus_cli import current_delivery, listener

def note(**extra):
    d = current_delivery()
    with open(os.environ["EVENTBUS_TEST_OUT"], "a") as out:
        out.write(json.dumps({"id": d.id, "attempt": d.attempts, "listener": d.listener,
                              "event": d.event, "daemon": os.environ["EB_NAME"], **extra}) + "\\n")
'''

COMMON = NOTE + '''
@listener("work", "user_created")
def work(pause=0.0, **kwargs):
    time.sleep(pause)
    note()

@listener("boom")
def boom(**kwargs):
    note()
    raise RuntimeError("boom on purpose")

@listener("long")
async def long(seconds, **kwargs):
    import anyio
    await anyio.sleep(seconds)
    note()
'''

ONLY_B = NOTE + '''
@listener("work")
def only_b(**kwargs):
    note()

@listener("work*")
def glob(**kwargs):
    note()
'''


Server = RedisServer | PostgresServer


class Bus:
    """The daemons of one test, sharing one store and prefix."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.kind = "redis" if isinstance(server, RedisServer) else "postgres"
        self.store = "Redis" if self.kind == "redis" else "PostgreSQL"
        self.prefix = new_prefix() if self.kind == "redis" else new_schema()
        self.daemons: list[Daemon] = []

    def daemon(self, name: str, listeners: str = COMMON, *, claim_after: float = 2.0,
               config: str = "", start: bool = True) -> Daemon:
        made = Daemon(short_directory(), listeners=listeners,
                      config=self.server.backend(name, self.prefix, claim_after) + config)
        made.env["EB_NAME"] = name
        self.daemons.append(made)
        if start:  # status answers once the daemon has joined the bus
            assert made.start().cli("status").returncode == 0, made.logs()
        return made

    def records(self) -> list[dict[str, Any]]:
        return [record for daemon in self.daemons for record in notes(daemon)]

    def close(self) -> None:
        for daemon in self.daemons:
            daemon.kill()
            shutil.rmtree(daemon.root, ignore_errors=True)


def notes(daemon: Daemon) -> list[dict[str, Any]]:
    """What the daemon's listeners noted, whole lines only (they may be writing one now)."""
    return daemon.written()


@pytest.fixture(params=["redis", "postgres"])
def bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    made = Bus(request.getfixturevalue(f"{request.param}_server"))
    yield made
    made.close()


def events_file(root: Path, count: int, event: str = "work", **kwargs: Any) -> Path:
    path = root / "events.jsonl"
    path.write_text("".join(json.dumps({"event": event, "kwargs": {"n": n, **kwargs}}) + "\n"
                            for n in range(count)))
    return path


def test_two_daemons_share_the_events_each_delivery_once(bus: Bus) -> None:
    a, b = bus.daemon("a"), bus.daemon("b")
    result = a.cli("emit", "--file", str(events_file(a.root, 2000, pause=0.001)))
    assert result.returncode == 0, result.stderr
    wait_for(lambda: len(bus.records()) >= 2000, 60, lambda: f"{len(bus.records())} handled")
    ids = Counter(record["id"] for record in bus.records())
    assert len(ids) == 2000
    assert set(ids.values()) == {1}
    by_daemon = Counter(record["daemon"] for record in bus.records())
    assert by_daemon["a"] > 0, by_daemon
    assert by_daemon["b"] > 0, by_daemon
    queue = b.json("queue")
    assert queue["succeeded"] >= 2000
    assert queue["pending"] == 0


def test_fan_out_reaches_listeners_on_other_daemons(bus: Bus) -> None:
    a, b = bus.daemon("a"), bus.daemon("b", ONLY_B + COMMON.replace(NOTE, ""))
    for daemon in (a, b):
        result = daemon.cli("emit", "work", "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["deliveries"] == 3  # work, only_b, glob
    assert a.cli("emit", "nobody_listens").returncode == 0
    wait_for(lambda: len(bus.records()) >= 6, explain=lambda: str(bus.records()))
    listeners = Counter(record["listener"] for record in bus.records())
    assert listeners == {"recorder:work": 2, "recorder:only_b": 2, "recorder:glob": 2}
    assert {r["daemon"] for r in bus.records() if r["listener"] != "recorder:work"} == {"b"}
    wait_for(lambda: a.json("queue")["unrouted"] == 1)


def test_kill_9_of_one_daemon_loses_nothing(bus: Bus) -> None:
    a, b = bus.daemon("a"), bus.daemon("b")
    assert a.cli("emit", "--file", str(events_file(a.root, 3000, pause=0.002))).returncode == 0
    wait_for(lambda: len(notes(a)) >= 300, 30)
    a.kill()  # SIGKILL, mid-load
    held_by_a = len(notes(a))
    wait_for(lambda: len({r["id"] for r in bus.records()}) >= 3000, 60,
             lambda: f"{len({r['id'] for r in bus.records()})} of 3000 handled:\n{b.logs()}")
    ids = Counter(record["id"] for record in bus.records())
    assert len(ids) == 3000  # nothing lost
    duplicates = sum(count - 1 for count in ids.values())
    assert duplicates <= 500, duplicates  # at most what a held: one read's worth
    # What a held when killed, b took over (and said so). A kill that lands while a holds
    # nothing committed (its claim in flight rolls back) leaves b nothing to take over:
    # then nothing may run twice either.
    assert "took over" in b.logs() or duplicates == 0, b.logs()
    assert held_by_a > 0
    wait_for(lambda: (q := b.json("queue"))["pending"] == 0 and q["running"] == 0, 20)


KEYED = NOTE + '''
@listener("keyed")
def keyed(n, key):
    note(n=n, key=key, at="start", t=time.time())
    time.sleep(0.004)
    note(n=n, key=key, at="end", t=time.time())
'''


def test_order_keys_hold_across_daemons_and_a_kill_9(bus: Bus) -> None:
    config = "[daemon]\nconcurrency = 9\nmax_per_listener = 8\n"
    a, b = bus.daemon("a", KEYED, config=config), bus.daemon("b", KEYED, config=config)
    keys = ["user:1", "user:2", "user:3"]
    events = a.root / "keyed.jsonl"
    events.write_text("".join(json.dumps({"event": "keyed", "order_key": keys[n % 3],
                                          "kwargs": {"n": n, "key": keys[n % 3]}}) + "\n"
                              for n in range(240)))
    assert a.cli("emit", "--file", str(events)).returncode == 0
    wait_for(lambda: sum(r["at"] == "end" for r in notes(a)) >= 20, 30)
    a.kill()  # SIGKILL, mid-load
    wait_for(lambda: len({r["n"] for r in bus.records() if r["at"] == "end"}) >= 240, 60,
             lambda: f"{len({r['n'] for r in bus.records() if r['at'] == 'end'})} of 240:\n"
                     f"{b.logs()}")
    records = sorted(bus.records(), key=lambda record: record["t"])
    for key in keys:
        ends = {(r["n"], r["daemon"]): r["t"] for r in records
                if r["key"] == key and r["at"] == "end"}
        firsts: list[int] = []
        running_until = 0.0
        for record in (r for r in records if r["key"] == key and r["at"] == "start"):
            if record["n"] not in firsts:
                firsts.append(record["n"])
            end = ends.get((record["n"], record["daemon"]))
            if end is None:  # cut short by the kill: its rerun on b comes after claim_after
                continue
            assert record["t"] >= running_until, f"two deliveries of {key} ran at once"
            running_until = end
        assert firsts == [n for n in range(240) if keys[n % 3] == key], key
    twice = sum(count - 1 for count in Counter(
        r["n"] for r in records if r["at"] == "start").values())
    assert twice <= 3, twice  # at most what a ran when killed: one per key


def test_a_restarted_daemon_resumes_its_own_before_claim_after(bus: Bus) -> None:
    a = bus.daemon("a", claim_after=600)
    assert a.cli("emit", "--file", str(events_file(a.root, 200, pause=0.02))).returncode == 0
    wait_for(lambda: len(notes(a)) >= 20, 30)
    a.kill()
    a.start()
    wait_for(lambda: len({r["id"] for r in notes(a)}) >= 200, 30, a.logs)
    assert "resumed" in a.logs()


def test_failed_list_retry_and_purge_from_another_daemon(bus: Bus) -> None:
    a = bus.daemon("a")
    b = bus.daemon("b", ONLY_B)  # b does not load boom: it runs on a only
    result = b.cli("emit", "boom", "--wait", "--timeout", "20")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "boom on purpose" in result.stdout + result.stderr
    failed = b.json("queue", "list", "--state", "failed")
    assert [item["listener"] for item in failed] == ["recorder:boom"]
    assert a.json("queue", "list", "--state", "failed")[0]["id"] == failed[0]["id"]
    shown = b.json("queue", "show", str(failed[0]["id"]))
    assert "boom on purpose" in shown["error"]
    assert b.cli("queue", "retry", str(failed[0]["id"])).returncode == 0
    wait_for(lambda: len(notes(a)) >= 2)
    wait_for(lambda: len(b.json("queue", "list", "--state", "failed")) == 1)
    assert b.cli("queue", "purge", "--failed", "--yes").returncode == 0
    assert a.json("queue", "list", "--state", "failed") == []
    assert b.cli("queue", "retry", "999999999").returncode != 0


def test_wait_and_tail_across_daemons(bus: Bus) -> None:
    a = bus.daemon("a")
    b = bus.daemon("b", ONLY_B)
    tail = subprocess.Popen([EVENTBUS, "tail", "--json"], env=b.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert tail.stdout is not None
        assert tail.stderr is not None
        assert "following" in tail.stderr.readline()  # subscribed
        result = b.cli("emit", "user_created", "--kw", "email=x", "--wait", "--json")
        assert result.returncode == 0, result.stderr
        outcome = json.loads(result.stdout)["results"]
        assert [item["ok"] for item in outcome] == [True]
        assert notes(a)[0]["daemon"] == "a"
        seen: list[dict[str, Any]] = []
        while not any(r.get("type") == "ok" and r.get("listener") == "recorder:work"
                      for r in seen):
            seen.append(json.loads(tail.stdout.readline()))
        # Each record names the daemon that ran the delivery, and a start how long it
        # waited. The others publish starts once they heard of the tail (within 0.1 s):
        # emit until a start from a comes through.
        for _ in range(100):
            if any(r.get("type") == "started" and r["listener"] == "recorder:work"
                   for r in seen):
                break
            assert b.cli("emit", "user_created", "--kw", "email=x", "--wait").returncode == 0
            while True:  # until this emit's outcome comes through
                seen.append(json.loads(tail.stdout.readline()))
                if seen[-1].get("type") == "ok" and seen[-1]["listener"] == "recorder:work":
                    break
    finally:
        tail.terminate()
        tail.communicate(timeout=10)
    started = [r for r in seen if r.get("type") == "started"
               and r.get("listener") == "recorder:work"]
    assert started, [(r.get("type"), r.get("listener"), r.get("daemon")) for r in seen]
    assert all(r["daemon"] == "a" and r["latency"] is not None for r in started), started
    assert all(r["daemon"] in ("a", "b") for r in seen if "delivery" in r)


def test_delayed_emit_and_cron_fire_once_bus_wide(bus: Bus) -> None:
    cron = ('[[schedule]]\nname = "tick"\nevent = "work"\nevery = "1s"\n')
    a, b = bus.daemon("a", config=cron), bus.daemon("b", config=cron)
    assert a.cli("emit", "user_created", "--delay", "1s").returncode == 0
    wait_for(lambda: any(r["event"] == "user_created" for r in bus.records()), 20)
    assert b.json("queue")["scheduled"] == 0
    wait_for(lambda: sum(r["event"] == "work" for r in bus.records()) >= 3, 20)
    a.stop()
    b.stop()
    fires = [r for r in bus.records() if r["event"] == "work"]
    assert len({r["id"] for r in fires}) == len(fires)
    seconds = {r["id"] for r in fires}
    assert len(fires) == len(seconds)


def _own_server(kind: str) -> Server:
    """A server of the store's kind for one test alone (it is stopped and started)."""
    if kind == "redis":
        binary = find_server()
        assert binary is not None
        return RedisServer(binary, appendonly=True).start()
    binaries = find_binaries()
    assert binaries is not None
    return PostgresServer(binaries).start()


def test_the_store_restarted_under_load(bus: Bus) -> None:
    server = _own_server(bus.kind)
    try:
        own = Bus(server)
        a = own.daemon("a")
        accepted = refused = 0
        for n in range(40):
            if n == 15:
                server.kill()
            if n == 25:
                server.start()
                wait_for(lambda: a.cli("emit", "user_created").returncode == 0, 30, a.logs)
                accepted += 1
            result = a.cli("emit", "user_created", "--kw", f"n={n}")
            if result.returncode == 0:
                accepted += 1
            else:
                refused += 1
                assert "backend_unavailable" in result.stderr or bus.store in result.stderr, \
                    result.stderr
        assert refused >= 5
        assert accepted >= 25
        wait_for(lambda: len(notes(a)) >= accepted, 30, a.logs)
        assert "is back" in a.logs()
        own.close()
    finally:
        server.stop()


def test_bad_backend_config_is_a_clear_error(bus: Bus, short_dir: Path) -> None:
    both = Daemon(short_dir, config='[backend]\nurl = "redis://127.0.0.1:1/0"\n'
                  '[journal]\npath = "x.db"\n')
    result = both.cli("--config", str(both.config), "serve")
    assert result.returncode != 0
    assert "backend" in result.stderr
    assert "journal" in result.stderr
    nowhere = Daemon(short_dir, config='[backend]\nurl = "redis://127.0.0.1:1/0"\n')
    result = nowhere.cli("--config", str(nowhere.config), "serve")
    assert result.returncode == 1
    assert "redis://127.0.0.1:1/0" in result.stderr
    taken = bus.daemon("same")
    twin = bus.daemon("same", start=False)
    result = twin.cli("--config", str(twin.config), "serve")
    assert result.returncode == 1
    assert "same" in result.stderr
    assert taken.answers()


def test_sigterm_hands_back_what_was_read(bus: Bus) -> None:
    a = bus.daemon("a", claim_after=600)
    b = bus.daemon("b", claim_after=600)
    assert a.cli("emit", "--file", str(events_file(a.root, 600, pause=0.01))).returncode == 0
    wait_for(lambda: len(notes(a)) >= 20, 30)
    assert a.stop(signal.SIGTERM) == 0
    b.cli("emit", "user_created")  # a new event, as work goes on
    wait_for(lambda: len({r["id"] for r in bus.records()}) >= 601, 60,
             lambda: f"{len({r['id'] for r in bus.records()})} handled:\n{b.logs()}")


def test_reload_adds_and_removes_listeners_bus_wide(bus: Bus) -> None:
    a = bus.daemon("a", claim_after=600)
    b = bus.daemon("b", ONLY_B, claim_after=600)
    (a.listeners_dir / "recorder.py").write_text(COMMON + '''
@listener("added")
def added(**kwargs):
    note()
''')
    assert a.cli("listeners", "reload").returncode == 0
    result = b.cli("emit", "added", "--json")  # through the other daemon
    assert json.loads(result.stdout)["deliveries"] == 1, result.stdout + result.stderr
    wait_for(lambda: any(r["listener"] == "recorder:added" for r in notes(a)), 20, a.logs)
    # only_b waits while no daemon runs it; then b drops it: its backlog fails as removed
    b.stop()
    assert a.cli("emit", "work").returncode == 0  # work on a; only_b and glob wait for b
    (b.listeners_dir / "recorder.py").write_text(NOTE)
    b.start()
    assert b.cli("status").returncode == 0
    wait_for(lambda: len(a.json("queue", "list", "--state", "failed")) == 2, 20, b.logs)
    failed = a.json("queue", "list", "--state", "failed")
    assert {item["listener"] for item in failed} == {"recorder:only_b", "recorder:glob"}
    assert all("removed by a reload" in item["error"] for item in failed)
    assert a.cli("queue", "retry", str(failed[0]["id"])).returncode != 0  # nobody runs it


@pytest.fixture
def redis_bus(redis_server: RedisServer) -> Iterator[Bus]:
    """A bus on Redis alone, for what only Redis does (lose keys: flushed, or restarted
    without persistence; PostgreSQL's tables are durable)."""
    made = Bus(redis_server)
    yield made
    made.close()


def test_a_bus_whose_keys_were_flushed_joins_again(redis_bus: Bus) -> None:
    from redis.client import Redis

    bus = redis_bus
    assert isinstance(bus.server, RedisServer)
    a = bus.daemon("a")
    assert a.cli("emit", "user_created").returncode == 0
    wait_for(lambda: len(notes(a)) == 1)
    with Redis(unix_socket_path=str(bus.server.socket)) as client:
        for key in client.scan_iter(match="{" + bus.prefix + "}*"):
            client.delete(key)
    # the daemon notices within a heartbeat: its listeners are routed and read again
    wait_for(lambda: a.json("emit", "user_created")["deliveries"] == 1, 20, a.logs)
    wait_for(lambda: len(notes(a)) >= 2, 20, a.logs)


def test_a_long_call_is_never_taken_over_while_its_daemon_lives(bus: Bus) -> None:
    a, b = bus.daemon("a", claim_after=1), bus.daemon("b", claim_after=1)
    assert a.cli("emit", "long", "--kw", "seconds:=3.5", "--wait", "--timeout", "30"
                 ).returncode == 0
    assert b.cli("emit", "user_created", "--wait").returncode == 0  # b is alive and sweeping
    assert [r["listener"] for r in bus.records()].count("recorder:long") == 1
    assert "took over" not in a.logs() + b.logs()


FLAKY = NOTE + '''
import time as clock

@listener("flaky", retries=2, backoff=0.5)
def flaky(**kwargs):
    note(at=clock.time())
    if current_delivery().attempts < 3:
        raise RuntimeError("not yet")
'''


def test_retries_wait_out_their_backoff_on_any_daemon(bus: Bus) -> None:
    a, b = bus.daemon("a", FLAKY), bus.daemon("b", FLAKY)
    result = a.cli("emit", "flaky", "--wait", "--timeout", "30", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    runs = sorted(bus.records(), key=lambda record: record["attempt"])
    assert [run["attempt"] for run in runs] == [1, 2, 3]
    assert runs[1]["at"] - runs[0]["at"] >= 0.5  # the backoff, doubled each time
    assert runs[2]["at"] - runs[1]["at"] >= 1.0
    queue = b.json("queue")
    assert (queue["succeeded"], queue["retrying"]) == (1, 0)
    assert queue["listeners"]["recorder:flaky"]["retried"] == 2


def test_a_daemon_frozen_past_claim_after_leaves_what_it_had_not_started(bus: Bus) -> None:
    a = bus.daemon("a", claim_after=1, config="[daemon]\nconcurrency = 1\n")
    for n in range(4):
        assert a.cli("emit", "long", "--kw", "seconds:=1.5", "--kw", f"n:={n}").returncode == 0
    wait_for(lambda: a.json("queue")["running"] == 1)
    assert a.process is not None
    a.process.send_signal(signal.SIGSTOP)
    try:
        b = bus.daemon("b", claim_after=1)
        b.wait_for_log("took over")
    finally:
        a.process.send_signal(signal.SIGCONT)
    a.wait_for_log("were taken over by another daemon")
    found = re.search(r"(\d+) that were running here, or ended here while it was cut off, may "
                      r"run on both; (\d+) not started", a.logs())
    assert found is not None, a.logs()
    both = int(found[1])
    wait_for(lambda: len({r["id"] for r in bus.records()}) == 4, 30,
             lambda: str(bus.records()))
    twice = sum(count - 1 for count in Counter(r["id"] for r in bus.records()).values())
    assert twice <= both
