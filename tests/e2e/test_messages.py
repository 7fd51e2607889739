"""What the command says when something is wrong: what was wrong, and what to do."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest

from tests.harness import Daemon, running, wait_for


def _said(text: str) -> str:
    """``text`` out of rich's error box, on one line."""
    return " ".join(re.sub("[│╭╮╰╯─]", " ", text).split())


def test_purge_asks_for_what_was_not_given_and_blames_no_option_never_given(
    daemon: Daemon,
) -> None:
    neither = daemon.cli("queue", "purge", "--yes")
    assert neither.returncode == 2
    assert ("say what to purge: --failed (the failed list), --pending (what waits to run) "
            "or --scheduled") in neither.stderr
    assert "Invalid value" not in neither.stderr
    unasked = daemon.cli("queue", "purge", "--failed", input="")
    assert unasked.returncode == 2
    assert "stdin is not a terminal" in unasked.stderr
    assert "add --yes to drop every failed delivery without asking" in unasked.stderr
    assert "Invalid value for --yes" not in _said(unasked.stderr)
    retry = daemon.cli("queue", "retry")
    assert retry.returncode == 2
    assert "their ids (`eventbus queue list --state failed` shows them), or --all" in retry.stderr


@pytest.mark.parametrize("command", [["queue", "show", "abc"], ["queue", "retry", "0"]])
def test_a_bad_delivery_id_says_what_an_id_is(daemon: Daemon, command: list[str]) -> None:
    result = daemon.cli(*command)
    assert result.returncode == 2
    assert "is not a delivery id: ids are whole numbers from 1" in _said(result.stderr)
    assert "int range" not in result.stderr


def test_an_empty_list_says_what_is_empty(daemon: Daemon) -> None:
    assert daemon.cli("queue", "list").stdout.startswith(
        "no deliveries: nothing is pending, running, retrying or in the failed list")
    assert daemon.cli("queue", "list", "--state", "failed").stdout == "no failed deliveries\n"


@pytest.mark.process
def test_a_bad_listener_id_is_named_at_the_listener_files_line(short_dir: Path) -> None:
    daemon = Daemon(short_dir)
    (daemon.listeners_dir / "bad.py").write_text(
        "from eventbus_cli import listener\n\n\n@listener('bad id!')\ndef f():\n    pass\n")
    daemon.start(wait=False)
    assert daemon.process is not None
    assert daemon.process.wait(timeout=15) != 0
    logs = daemon.logs()
    assert "bad.py, line 4: @listener on listener('bad id!'): invalid event pattern" in logs
    assert "eventbus_cli" not in logs
    assert "bus/listener.py" not in logs


@pytest.mark.parametrize(("make", "words"), [
    (lambda path: path.mkdir(), "it is a folder, not a socket"),
    (lambda path: path.write_text(""), "it is a regular file, not a socket"),
])
def test_a_socket_path_that_is_no_socket_says_what_it_is(
    short_dir: Path, make: object, words: str,
) -> None:
    daemon = Daemon(short_dir)  # not started: its command, pointed at the path
    path = short_dir / "not-a-socket"
    make(path)  # type: ignore[operator]
    result = daemon.cli("--socket", str(path), "status")
    assert result.returncode == 3
    assert words in result.stderr
    assert "(refused)" not in result.stderr


@pytest.mark.process
def test_sigterm_logs_what_a_sigint_would_do(daemon: Daemon) -> None:
    daemon.signal_and_wait_for_log(signal.SIGTERM, "SIGTERM received")
    assert daemon.process is not None
    assert daemon.process.wait(timeout=15) == 0
    assert ("SIGTERM received: finishing what was accepted, for at most 30s "
            "(shutdown_timeout); a SIGINT (Ctrl-C) now stops without waiting for it"
            ) in daemon.logs()


def test_counts_of_one_read_as_english(daemon: Daemon) -> None:
    emitted = daemon.cli("emit", "user_created", "email=x")
    assert emitted.stdout == "user_created: 1 delivery queued\n"
    daemon.cli("emit", "boom")
    wait_for(lambda: daemon.json("queue")["failed_list"] == 1)
    listed = daemon.json("listeners", "list")
    assert daemon.cli("status", "--check").stdout.startswith("unhealthy: 1 delivery failed")
    assert f"reloaded {len(listed)} listeners" in daemon.cli("listeners", "reload").stdout
    assert daemon.cli("queue", "retry", "--all").stdout == "1 delivery queued again\n"


def test_the_log_level_takes_any_case(short_dir: Path) -> None:
    with running(short_dir, extra_args=("--log-level", "DEBUG")) as daemon:
        assert daemon.cli("emit", "nobody_listens").returncode == 0
        daemon.wait_for_log("counted as unrouted")  # a debug record


def test_kw_takes_the_keys_an_events_file_takes(daemon: Daemon) -> None:
    assert daemon.cli("emit", "user_created", "--kw", "1bad=x", "a-b:=4").returncode == 0
    file = daemon.cli("emit", "--file", "-", input='{"event": "user_created", '
                      '"kwargs": {"1bad": "x", "a-b": 4}}\n')
    assert file.returncode == 0
    records = daemon.wait_for_records(2)
    assert records[0]["kwargs"] == records[1]["kwargs"] == {"1bad": "x", "a-b": 4}


def test_a_failed_reload_with_json_prints_the_error_as_json(daemon: Daemon) -> None:
    (daemon.listeners_dir / "broken.py").write_text("def oops(:\n")
    result = daemon.cli("listeners", "reload", "--json")
    assert result.returncode == 1
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "reload_failed"
    assert error["file"].endswith("broken.py")
    assert error["line"] == 1


def test_listener_numbers_have_one_type_each(short_dir: Path) -> None:
    listeners = ("from eventbus_cli import listener\n\n"
                 "@listener('a', timeout=10, backoff=1)\ndef a():\n    pass\n\n"
                 "@listener('b')\ndef b():\n    pass\n")
    with running(short_dir, listeners=listeners) as daemon:
        items = daemon.json("listeners", "list")
        assert {type(item["timeout"]) for item in items} == {float}
        assert {type(item["backoff"]) for item in items} == {float}
        assert {type(item["retries"]) for item in items} == {int}


@pytest.mark.parametrize("option", ["--socket", "--config"])
def test_a_global_option_after_the_command_says_where_it_goes(
    daemon: Daemon, option: str,
) -> None:
    result = daemon.cli("emit", option, "x", "user_created")
    assert result.returncode == 2
    assert (f"{option} is a global option, so it goes before the command: "
            f"`eventbus {option} ... emit ...`") in result.stderr
