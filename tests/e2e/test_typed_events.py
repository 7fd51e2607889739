"""Typed events through the real daemon: refused at emit with the fix, nothing queued."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Daemon, started, wait_for

LISTENERS = '''
from __future__ import annotations

import json, os
from typing import Any, Literal
from eventbus_cli import listener

def record(**fields):
    with open(os.environ["EVENTBUS_TEST_OUT"], "a") as out:
        out.write(json.dumps(fields) + "\\n")

@listener("user_deleted")
def send_farewell_email_handler(email: str, **kwargs: Any) -> None:
    record(listener="farewell", email=email)

@listener("user_deleted")
def notify_customer_support(reason: str) -> None:
    record(listener="support", reason=reason)

@listener("report.*")
def report(count: int, mode: Literal["daily", "weekly"] = "daily") -> None:
    record(listener="report", count=count, mode=mode)

@listener("loose", check="off")
def loose(n: int) -> None:
    record(listener="loose", n=n)
'''


@pytest.fixture
def bus(short_dir: Path) -> Iterator[Daemon]:
    yield from started(short_dir, listeners=LISTENERS)


def _nothing_queued(daemon: Daemon) -> None:
    queue = daemon.json("queue")
    assert (queue["pending"], queue["running"], queue["succeeded"], queue["failed"]) == (
        0, 0, 0, 0)


def test_the_seeds_emit_is_refused_naming_the_listener_and_the_fix(bus: Daemon) -> None:
    result = bus.cli("emit", "user_deleted", "email=ada@example.com", "reason=moved away")
    assert result.returncode == 1
    assert result.stderr == (
        "error: user_deleted: recorder:notify_customer_support(reason: str) does not take the "
        "keyword "
        "'email' (add **kwargs to it, or send only reason) [bad_arguments]\n")
    _nothing_queued(bus)


def test_a_value_of_the_wrong_json_type_is_refused_with_how_to_send_it(bus: Daemon) -> None:
    result = bus.cli("emit", "report.sales", "count=3")
    assert result.returncode == 1
    assert ('report.sales: recorder:report(count: int, mode: Literal[\'daily\', \'weekly\'] = '
            '\'daily\'): count expects int, got the string "3"; send count:=3 on the command '
            "line") in result.stderr
    assert bus.cli("emit", "report.sales", "count:=3", "mode=yearly").returncode == 1
    _nothing_queued(bus)
    assert bus.cli("emit", "report.sales", "count:=3", "mode=weekly").returncode == 0
    assert bus.wait_for_records(1) == [{"listener": "report", "count": 3, "mode": "weekly"}]


def test_a_raw_client_gets_bad_arguments_with_each_listener_in_the_details(
    bus: Daemon,
) -> None:
    with socket.socket(socket.AF_UNIX) as raw:
        raw.connect(str(bus.socket))
        raw.sendall(b'{"id": 1, "op": "emit", "event": "user_deleted", '
                    b'"kwargs": {"email": "x"}}\n')
        reply = json.loads(raw.makefile("rb").readline())
    assert reply["ok"] is False
    error = reply["error"]
    assert error["code"] == "bad_arguments"
    assert error["event"] == "user_deleted"
    [refusal] = error["listeners"]
    assert refusal["listener"] == "recorder:notify_customer_support"
    assert refusal["signature"] == "(reason: str)"
    assert "does not take the keyword 'email'" in refusal["problem"]
    assert "needs the argument 'reason'" in refusal["problem"]
    _nothing_queued(bus)


def test_an_events_file_with_one_bad_line_is_refused_whole_naming_that_line(
    bus: Daemon,
) -> None:
    lines = [json.dumps({"event": "report.x", "kwargs": {"count": n}}) for n in range(5)]
    lines[3] = json.dumps({"event": "report.x", "kwargs": {"count": "3"}})
    result = bus.cli("emit", "--file", "-", input="\n".join(lines) + "\n")
    assert result.returncode == 1
    assert result.stdout == "0 of 5 events accepted: 0 deliveries queued, 0 unrouted\n"
    assert "error: line 4: report.x: recorder:report(" in result.stderr
    assert ('count expects int, got the string "3"; send count:=3 on the command line'
            in result.stderr)
    assert "[bad_arguments]" in result.stderr
    _nothing_queued(bus)


def test_no_check_lets_it_through_and_the_delivery_fails_naming_the_argument(
    bus: Daemon,
) -> None:
    result = bus.cli("emit", "user_deleted", "email=x", "reason=r", "--no-check", "--wait")
    assert result.returncode == 1
    assert "notify_customer_support: failed: TypeError" in result.stdout
    assert "unexpected keyword argument 'email'" in result.stdout
    [failed] = bus.json("queue", "list", "--state", "failed")
    assert failed["attempts"] == 1
    # a listener whose own check is off is never refused either
    assert bus.cli("emit", "loose", "n=not a number").returncode == 0


def test_dry_run_says_who_would_take_it_and_emits_nothing(bus: Daemon) -> None:
    refused = bus.cli("emit", "user_deleted", "email=x", "--dry-run")
    assert refused.returncode == 1
    assert refused.stdout.splitlines() == [
        "user_deleted would reach 2 listeners:",
        "  recorder:send_farewell_email_handler(email: str, **kwargs: Any): takes it",
        "  recorder:notify_customer_support(reason: str): does not take the keyword 'email' (add "
        "**kwargs to it, or send none of them); needs the argument 'reason' (send "
        "reason=...)",
    ]
    taken = bus.json("emit", "report.daily", "count:=1", "--dry-run")
    assert taken["listeners"][0]["takes"] is True
    assert bus.cli("emit", "nobody", "--dry-run").stdout == (
        "nobody would reach no listener (it would count as unrouted)\n")
    _nothing_queued(bus)


def test_the_catalog_lists_events_signatures_and_a_schema_per_event(bus: Daemon) -> None:
    catalog = {entry["event"]: entry for entry in bus.json("events")}
    assert sorted(catalog) == ["loose", "report.*", "user_deleted"]
    assert catalog["report.*"]["pattern"] is True
    assert [item["listener"] for item in catalog["user_deleted"]["listeners"]] == [
        "recorder:send_farewell_email_handler", "recorder:notify_customer_support"]
    text = bus.cli("events")
    assert "report.* (pattern)" in text.stdout
    printed = bus.cli("events", "schema", "user_deleted")
    assert printed.returncode == 0, printed.stderr
    schema = json.loads(printed.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    parts = [part["properties"]["kwargs"] for part in schema["allOf"]]
    assert parts[0]["required"] == ["email"]
    assert parts[0]["additionalProperties"] is True
    assert parts[1] == {"type": "object", "properties": {"reason": {"type": "string"}},
                        "required": ["reason"], "additionalProperties": False}
    unknown = bus.cli("events", "schema", "nobody")
    assert unknown.returncode == 1
    assert "no listener takes event 'nobody'" in unknown.stderr
    listed = {item["name"]: item for item in bus.json("listeners", "list")}
    assert listed["recorder:report"]["signature"] == (
        "(count: int, mode: Literal['daily', 'weekly'] = 'daily')")


def test_a_reload_applies_a_fixed_signature_at_once(bus: Daemon) -> None:
    assert bus.cli("emit", "user_deleted", "email=x", "reason=r").returncode == 1
    fixed = LISTENERS.replace("def notify_customer_support(reason: str) -> None:",
                              "def notify_customer_support(reason: str, **kwargs: Any) -> None:")
    (bus.listeners_dir / "recorder.py").write_text(fixed)
    assert bus.cli("listeners", "reload").returncode == 0
    assert bus.cli("emit", "user_deleted", "email=x", "reason=r").returncode == 0
    records = bus.wait_for_records(2)
    assert {record["listener"] for record in records} == {"farewell", "support"}


def test_check_warn_in_the_config_queues_and_logs(short_dir: Path) -> None:
    config = '[delivery]\ncheck = "warn"\n'
    daemon = Daemon(short_dir, listeners=LISTENERS, config=config).start()
    try:
        assert daemon.cli("emit", "user_deleted", "email=x", "reason=r").returncode == 0
        daemon.wait_for_log('check = "warn": queued anyway')
        wait_for(lambda: daemon.json("queue")["failed_list"] == 1)
    finally:
        daemon.dispose()


def test_an_unresolvable_annotation_is_a_warning_at_load_naming_the_listener(
    short_dir: Path,
) -> None:
    listeners = ("from __future__ import annotations\nfrom eventbus_cli import listener\n\n"
                 "@listener('e')\ndef takes(user: NoSuchType, n: int) -> None:\n    pass\n")
    daemon = Daemon(short_dir, listeners=listeners).start()
    try:
        daemon.wait_for_log("listener recorder:takes: the annotation 'NoSuchType' of 'user' "
                            "cannot be resolved")
        assert daemon.cli("emit", "e", "user=anything", "n:=1").returncode == 0
        assert daemon.cli("emit", "e", "user=anything", "n=1").returncode == 1
    finally:
        daemon.dispose()
