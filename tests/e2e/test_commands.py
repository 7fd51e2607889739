"""Every reading and emitting command against the real daemon, with its JSON documents."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from eventbus_cli import Client
from tests.harness import EVENTBUS, Daemon, wait_for


def test_emit_passes_args_and_kwargs_as_the_design_says(daemon: Daemon) -> None:
    (daemon.root / "mail.txt").write_text("Hello,\nworld")
    (daemon.root / "extra.json").write_text('{"plan": "pro"}')
    result = daemon.cli(
        "emit", "user_created", "--arg", "5", "--arg", ":=5", "--arg", "@mail.txt",
        "--kw", "email=x@example.com", "--kw", "count:=3", "--kw", "admin:=true",
        "--kw", "body=@mail.txt", "--kw", "extra:=@extra.json", "--kw", "eq=a=b",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "user_created: 1 delivery queued\n"
    [record] = daemon.wait_for_records(1)
    assert record == {
        "args": ["5", 5, "Hello,\nworld"],
        "kwargs": {"email": "x@example.com", "count": 3, "admin": True,
                   "body": "Hello,\nworld", "extra": {"plan": "pro"}, "eq": "a=b"},
    }


def test_emit_json_document(daemon: Daemon) -> None:
    assert daemon.json("emit", "user_created", "--kw", "email=x") == {
        "event_id": "user_created", "deliveries": 1,
    }


def test_unrouted_event_is_accepted_counted_and_reported_on_stderr(daemon: Daemon) -> None:
    result = daemon.cli("emit", "nobody.listens")
    assert result.returncode == 0
    assert "no listener matches 'nobody.listens'" in result.stderr
    assert "unrouted" in result.stderr
    assert daemon.json("queue")["unrouted"] == 1


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--kw", "email"], "--kw"),
        (["--kw", "count:={bad"], "--kw"),
        (["--kw", "=1"], "--kw"),
        (["--arg", ":=nope"], "--arg"),
        (["--kw", "body=@/no/such/file"], "/no/such/file"),
    ],
)
def test_bad_values_are_usage_errors_naming_the_argument(
    daemon: Daemon, args: list[str], named: str
) -> None:
    result = daemon.cli("emit", "user_created", *args)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr
    assert daemon.json("queue")["succeeded"] == 0


def test_bad_event_id_and_missing_event_are_usage_errors(daemon: Daemon) -> None:
    bad = daemon.cli("emit", "no spaces allowed")
    assert bad.returncode == 2
    assert "invalid event id" in bad.stderr
    missing = daemon.cli("emit")
    assert missing.returncode == 2
    assert "--file" in missing.stderr


def test_listeners_list_json_document(daemon: Daemon) -> None:
    listeners = {item["name"]: item for item in daemon.json("listeners", "list")}
    assert set(listeners) == {"recorder:record", "recorder:explode", "recorder:slow",
                              "recorder:gate"}
    record = listeners["recorder:record"]
    assert record["module"] == "recorder"
    assert record["events"] == ["bulk.*", "user_created"]
    assert (record["retries"], record["timeout"]) == (0, 60)
    table = daemon.cli("listeners", "list")
    assert table.returncode == 0
    assert "record" in table.stdout
    assert "bulk.*" in table.stdout


def test_queue_and_queue_list_documents_show_a_failure(daemon: Daemon) -> None:
    assert daemon.cli("emit", "boom", "--kw", "why:=42").returncode == 0
    assert daemon.cli("emit", "user_created", "--kw", "email=x").returncode == 0
    daemon.wait_for_records(1)
    for _ in range(500):
        queue = daemon.json("queue")
        if queue["failed"]:
            break
    assert {key: queue[key] for key in
            ("pending", "running", "retrying", "succeeded", "failed", "unrouted")} == {
        "pending": 0, "running": 0, "retrying": 0, "succeeded": 1, "failed": 1, "unrouted": 0,
    }
    assert queue["listeners"]["recorder:explode"]["failed"] == 1
    assert queue["listeners"]["recorder:record"]["succeeded"] == 1
    [failed] = daemon.json("queue", "list", "--state", "failed")
    assert failed["event"] == "boom"
    assert failed["listener"] == "recorder:explode"
    assert failed["state"] == "failed"
    assert failed["attempts"] == 1
    assert failed["error"] == "RuntimeError: listener exploded on purpose"
    assert (failed["args"], failed["kwargs"]) == ([], {"why": 42})
    assert set(failed) >= {"id", "event", "listener", "state", "attempts", "error", "args",
                           "kwargs"}
    assert daemon.json("queue", "list", "--state", "pending") == []
    table = daemon.cli("queue", "list")
    assert "listener exploded on purpose" in table.stdout
    assert "explode" in daemon.cli("queue").stdout


def test_queue_list_limit(daemon: Daemon) -> None:
    daemon.emit_gates("a", "b", "c")
    assert len(daemon.json("queue", "list")) == 3
    assert len(daemon.json("queue", "list", "--limit", "2")) == 2
    daemon.open_gate("a", "b", "c")
    assert daemon.cli("queue", "list", "--limit", "0").returncode == 2
    assert daemon.cli("queue", "list", "--state", "lost").returncode == 2


def test_queue_list_and_retry_choose_by_listener_event_and_error(daemon: Daemon) -> None:
    with Client(daemon.socket) as client:
        client.emit("boom", why=1)
        client.emit("user_created", email="x")
        assert client.join(30)
    assert len(daemon.json("queue", "list", "--state", "failed", "--grep", "EXPLODED")) == 1
    assert daemon.json("queue", "list", "--event", "user_*", "--state", "failed") == []
    assert daemon.json("queue", "list", "--listener", "recorder:record") == []
    assert daemon.cli("queue", "retry", "1", "--grep", "x").returncode == 2
    retried = daemon.cli("queue", "retry", "--all", "--grep", "no such error")
    assert "0 deliveries queued again" in retried.stdout
    retried = daemon.cli("queue", "retry", "--all", "--listener", "recorder:explode")
    assert "1 delivery queued again" in retried.stdout


def test_pause_resume_priority_and_order_key_on_the_command_line(daemon: Daemon) -> None:
    refused = daemon.cli("listeners", "pause", "recorder:nope")
    assert refused.returncode == 1
    assert "no listener is named 'recorder:nope'" in refused.stderr
    assert "recorder:record" in refused.stderr
    paused = daemon.cli("listeners", "pause", "recorder:record", "--for", "10m")
    assert paused.returncode == 0
    assert "paused recorder:record until" in paused.stdout
    assert daemon.cli("listeners", "pause", "recorder:record", "--for", "soon").returncode == 2
    emitted = daemon.cli("emit", "user_created", "email=x", "--priority", "high",
                         "--order-key", "user:1")
    assert emitted.returncode == 0
    listed = daemon.cli("queue", "list", "--state", "pending")
    assert "[high, key user:1]" in listed.stdout
    queue = daemon.json("queue")
    assert list(queue["paused"]) == ["recorder:record"]
    assert queue["listeners"]["recorder:record"]["paused"] is True
    assert "(paused)" in daemon.cli("queue").stdout
    assert daemon.cli("listeners", "resume", "recorder:record").returncode == 0
    with Client(daemon.socket) as client:
        assert client.join(30)
    assert daemon.written() == [{"args": [], "kwargs": {"email": "x"}}]
    bad = daemon.cli("emit", "user_created", "--priority", "urgent")
    assert bad.returncode == 2
    assert "priority must be one of high, normal, low" in bad.stderr
    assert daemon.cli("emit", "user_created", "--order-key", "k" * 201).returncode == 2


def test_status_json_document(daemon: Daemon) -> None:
    status = daemon.json("status")
    assert status["pid"] == daemon.pid
    assert status["socket"] == str(daemon.socket)
    assert status["config"] is None
    assert status["listeners"] == 4
    assert status["uptime_s"] >= 0
    assert status["version"]
    assert set(status["queue"]) >= {"pending", "running", "failed", "listeners"}
    human = daemon.cli("status")
    assert str(daemon.socket) in human.stdout


def test_emit_file_and_stdin(daemon: Daemon) -> None:
    lines = [json.dumps({"event": "bulk.item", "args": [n], "kwargs": {"n": n}})
             for n in range(2500)]
    (daemon.root / "events.jsonl").write_text("\n".join(lines[:2000]) + "\n\n")
    result = daemon.cli("emit", "--file", "events.jsonl", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"events": 2000, "accepted": 2000, "deliveries": 2000,
                                         "unrouted": 0, "duplicates": 0}
    piped = daemon.cli("emit", "--file", "-", input="\n".join(lines[2000:]) + '\n{"event": "x"}\n')
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == "501 of 501 events accepted: 500 deliveries queued, 1 unrouted\n"
    records = daemon.wait_for_records(2500)
    assert sorted(record["args"][0] for record in records) == list(range(2500))


def test_emit_file_with_a_bad_line_sends_nothing(daemon: Daemon) -> None:
    (daemon.root / "events.jsonl").write_text(
        '{"event": "user_created"}\n{"event": "user_created", "kwargs": []}\n'
    )
    result = daemon.cli("emit", "--file", "events.jsonl")
    assert result.returncode == 1
    assert "events.jsonl, line 2" in result.stderr
    assert '"kwargs" must be an object' in result.stderr
    assert "nothing was sent" in result.stderr
    assert daemon.json("queue")["succeeded"] == 0
    assert daemon.cli("emit", "--file", "missing.jsonl").returncode == 1


def test_global_socket_flag_wins_over_the_environment(daemon: Daemon) -> None:
    env = {**daemon.env, "EVENTBUS_SOCKET": "/tmp/eb-nowhere/none.sock"}
    assert daemon.cli("status", env=env).returncode == 3
    flagged = daemon.cli("--socket", str(daemon.socket), "status", "--json", env=env)
    assert flagged.returncode == 0, flagged.stderr
    assert json.loads(flagged.stdout)["socket"] == str(daemon.socket)


@pytest.mark.parametrize(
    "command",
    [["emit", "user_created"], ["listeners", "list"], ["queue"], ["queue", "list"], ["status"],
     ["status", "--json"]],
)
def test_no_daemon_is_exit_3_with_the_hint(short_dir: Path, command: list[str]) -> None:
    import subprocess

    env = {"PATH": "/usr/bin:/bin", "EVENTBUS_SOCKET": str(short_dir / "none.sock")}
    result = subprocess.run([EVENTBUS, *command], capture_output=True, text=True, env=env,
                            cwd=short_dir, timeout=30, check=False)
    assert result.returncode == 3
    assert "eventbus serve" in result.stderr
    assert str(short_dir / "none.sock") in result.stderr
    if "--json" in command:  # a script reading the JSON is told too
        error = json.loads(result.stdout)["error"]
        assert error["code"] == "no_daemon"
        assert error["socket"] == str(short_dir / "none.sock")
    else:
        assert result.stdout == ""


def test_the_emit_path_imports_neither_anyio_nor_rich(daemon: Daemon) -> None:
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "sys.argv = ['eventbus', 'emit', 'user_created', '--kw', 'email=x']\n"
        "from eventbus_cli.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print(sorted(m for m in ('anyio', 'rich', 'tomllib') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env=daemon.env, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"
    daemon.wait_for_records(1)


def test_the_readme_quick_start_serves_the_repositorys_listeners(short_dir: Path) -> None:
    """`eventbus serve` from the repository's root, then an emit from another terminal."""
    import os
    import subprocess

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "EVENTBUS_SOCKET": str(short_dir / "run" / "eb.sock")}
    env.pop("EVENTBUS_CONFIG", None)
    log = short_dir / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([EVENTBUS, "serve"], cwd=repo, env=env, stderr=out)
    try:
        for _ in range(300):
            emitted = subprocess.run([EVENTBUS, "emit", "user_created", "--kw",
                                      "email=ada@example.com"], env=env, capture_output=True,
                                     text=True, timeout=30, check=False)
            if emitted.returncode != 3:
                break
        assert emitted.returncode == 0, emitted.stderr
        assert emitted.stdout == "user_created: 2 deliveries queued\n"
        server.send_signal(2)
        assert server.wait(timeout=30) == 0
        assert "would send a welcome mail to ada@example.com" in log.read_text()
    finally:
        server.kill()
        server.wait(timeout=10)


def test_commands_find_eventbus_toml_in_a_parent_folder(daemon: Daemon) -> None:
    (daemon.root / "eventbus.toml").write_text(f'[daemon]\nsocket = "{daemon.socket}"\n')
    inner = daemon.root / "src" / "app"
    inner.mkdir(parents=True)
    env = {key: value for key, value in daemon.env.items() if key != "EVENTBUS_SOCKET"}
    found = subprocess.run([EVENTBUS, "status", "--json"], capture_output=True, text=True,
                           timeout=30, cwd=inner, env=env, check=False)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["socket"] == str(daemon.socket)


def test_the_no_daemon_error_says_where_the_socket_came_from(short_dir: Path) -> None:
    env = {key: value for key, value in os.environ.items()
           if key not in ("EVENTBUS_SOCKET", "EVENTBUS_CONFIG")}
    env["XDG_RUNTIME_DIR"] = str(short_dir)
    result = subprocess.run([EVENTBUS, "status"], capture_output=True, text=True, timeout=30,
                            cwd=short_dir, env=env, check=False)
    assert result.returncode == 3
    assert f"no daemon is listening on {short_dir / 'eventbus.sock'}" in result.stderr
    assert f"no eventbus.toml in {short_dir} or any folder above it" in result.stderr


DOUBLE = '''
import json, os
from eventbus_cli import listener

@listener("one", "double")
def first(n):
    with open(os.environ["EVENTBUS_TEST_OUT"], "a") as out:
        out.write(json.dumps({"n": n}) + "\\n")

@listener("double")
def second(n):
    pass
'''


def test_a_refused_batch_between_accepted_ones_gets_exact_resend_advice(
    short_dir: Path,
) -> None:
    config = "[daemon]\nqueue_size = 1\n"  # "double" needs 2 deliveries: it never fits
    daemon = Daemon(short_dir, listeners=DOUBLE, config=config).start()
    try:
        events = [{"event": "one", "args": [n]} for n in range(4000)]
        events[1000] = {"event": "double", "args": [1000]}  # first of the second batch
        lines = "".join(json.dumps(event) + "\n" for event in events)
        result = daemon.cli("emit", "--file", "-", input=lines)
        assert result.returncode == 1
        assert result.stdout == "3000 of 4000 events accepted: 3000 deliveries queued, 0 unrouted\n"
        assert "lines 1001-2000 were not accepted (the others were)" in result.stderr
        handled = {item["n"] for item in daemon.wait_for_records(3000)}
        assert handled == set(range(1000)) | set(range(2000, 4000))
    finally:
        daemon.dispose()


def test_keyword_items_need_no_kw_flag(daemon: Daemon) -> None:
    (daemon.root / "body.txt").write_text("hello")
    result = daemon.cli("emit", "user_created", "email=ada@example.com", "count:=3",
                        "body=@body.txt", "--kw", "admin:=true")
    assert result.returncode == 0, result.stderr
    [record] = daemon.wait_for_records(1)
    assert record["kwargs"] == {"email": "ada@example.com", "count": 3, "body": "hello",
                                "admin": True}
    bad = daemon.cli("emit", "user_created", "nothing-here")
    assert bad.returncode == 2
    assert "KEY=VALUE" in bad.stderr


def test_queue_requeue_is_retry_and_status_shows_health(daemon: Daemon) -> None:
    daemon.cli("emit", "boom")
    wait_for(lambda: len(daemon.json("queue", "list", "--state", "failed")) == 1)
    [failed] = daemon.json("queue", "list", "--state", "failed")
    status = daemon.cli("status")
    assert "unhealthy: 1 delivery failed" in status.stdout
    again = daemon.cli("queue", "requeue", str(failed["id"]))
    assert again.returncode == 0, again.stderr
    assert again.stdout == "1 delivery queued again\n"


def test_piped_queue_output_keeps_its_header_on_one_line(daemon: Daemon) -> None:
    daemon.cli("emit", "user_created", "email=x")
    daemon.wait_for_records(1)
    result = daemon.cli("queue")
    assert result.returncode == 0
    first = result.stdout.splitlines()[0]
    assert first.startswith("queue (10000 max): pending 0")
    assert first.endswith("unrouted 0  failed list 0")


def test_queue_list_limit_shows_the_newest_with_their_times(daemon: Daemon) -> None:
    for n in range(3):
        assert daemon.cli("emit", "boom", f"n:={n}").returncode == 0
    wait_for(lambda: daemon.json("queue")["failed_list"] == 3)
    newest = daemon.json("queue", "list", "--limit", "2")
    assert [item["kwargs"]["n"] for item in newest] == [2, 1]
    for item in newest:
        assert item["created"] <= item["last_attempt"] <= item["failed"]
        assert item["created"].endswith("Z")
    table = daemon.cli("queue", "list", "--limit", "2")
    assert "created" in table.stdout.splitlines()[1]
    assert "the newest 2 of 3 deliveries are shown (--limit)" in table.stderr
    shown = daemon.json("queue", "show", str(newest[0]["id"]))
    assert shown["failed"] == newest[0]["failed"]
    text = daemon.cli("queue", "show", str(newest[0]["id"])).stdout
    assert "last attempt" in text


@pytest.mark.parametrize(("option", "value", "words"), [
    ("--at", "0001-01-01T00:00", "out of range"),
    ("--delay", "\uff11\uff10s", "is not a delay"),  # full-width digits are no number
])
def test_a_time_or_delay_out_of_reach_is_a_usage_error(daemon: Daemon, option: str,
                                                      value: str, words: str) -> None:
    result = daemon.cli("emit", "user_created", "email=x", option, value)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert daemon.json("queue")["scheduled"] == 0


def test_full_width_digits_are_no_delivery_id(daemon: Daemon) -> None:
    result = daemon.cli("queue", "show", "\uff11")
    assert result.returncode == 2
    assert "is not a delivery id" in result.stderr
