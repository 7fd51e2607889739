"""What durable stores promise across a daemon's death: a subprocess, killed with SIGKILL.

Part of the contract suite (run per durable store); the rest of it runs in-process.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w

from tests.harness import Daemon, wait_for
from tests.stores.conftest import Store

pytestmark = [pytest.mark.stores("sqlite", "redis"), pytest.mark.timeout(90)]


@pytest.mark.process  # kill -9
def test_an_accepted_delivery_runs_at_least_once_across_kill_9(store: Store,
                                                               short_dir: Path) -> None:
    config = tomli_w.dumps(store.tables(short_dir, "a"))
    daemon = Daemon(short_dir, config=config)
    daemon.start()
    try:
        daemon.emit_gates("one", "two")  # running when the daemon dies
        daemon.kill()
        assert daemon.records() == []
        daemon.start()
        daemon.open_gate("one", "two")
        wait_for(lambda: len(daemon.records()) >= 2, 30, daemon.logs)
        assert sorted(item["gate"] for item in daemon.records()) == ["one", "two"]
    finally:
        daemon.dispose()
