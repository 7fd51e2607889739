"""log_format = "json": every line the daemon logs is one JSON object, listeners' included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness import Daemon, running, wait_for

LISTENERS = '''
import logging
from eventbus_cli import listener

log = logging.getLogger(__name__)

@listener("user_created")
def welcome(email: str) -> None:
    log.info("would welcome %s", email)

@listener("boom", retries=1, backoff=0)
def explode() -> None:
    raise RuntimeError("exploded on purpose")
'''


def _lines(daemon: Daemon) -> list[dict[str, object]]:
    return [json.loads(line) for line in daemon.logs().splitlines()]


@pytest.mark.process
def test_each_line_is_json_with_the_delivery_facts(short_dir: Path) -> None:
    config = '[daemon]\nlog_format = "json"\n'
    with running(short_dir, listeners=LISTENERS, config=config) as daemon:
        assert daemon.cli("emit", "user_created", "email=ada@example.com").returncode == 0
        assert daemon.cli("emit", "boom").returncode == 0
        wait_for(lambda: any(r.get("level") == "error" for r in _lines(daemon)))
        assert daemon.stop() == 0
        records = _lines(daemon)  # each line parses: a text line would fail here
    assert all({"timestamp", "level", "logger", "message"} <= set(r) for r in records)
    assert all(str(r["timestamp"]).endswith("Z") for r in records)
    [welcome] = [r for r in records if r["logger"] == "eventbus_listeners.recorder"]
    assert welcome["message"] == "would welcome ada@example.com"
    retried, failed = [r for r in records if r.get("listener") == "recorder:explode"]
    assert (retried["level"], retried["attempt"], failed["level"], failed["attempt"]) == (
        "warning", 1, "error", 2)
    assert (failed["event"], failed["delivery"]) == ("boom", retried["delivery"])
    assert "RuntimeError: exploded on purpose" in str(failed["message"])


def test_an_unknown_log_format_is_refused_naming_the_key(short_dir: Path) -> None:
    daemon = Daemon(short_dir, listeners=LISTENERS, config='[daemon]\nlog_format = "xml"\n')
    result = daemon.cli("--config", str(daemon.config), "serve", "--listeners-dir",
                        str(daemon.listeners_dir))
    assert result.returncode == 1, result.stderr
    assert "log_format" in result.stderr
    assert "text, json" in result.stderr
