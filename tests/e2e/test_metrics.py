"""[metrics]: /metrics in Prometheus's text format, scraped from a real daemon."""

from __future__ import annotations

import contextlib
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from eventbus_cli import Client
from tests.harness import Daemon, running, wait_for

LISTENERS = '''
from eventbus_cli import listener

@listener("user_created")
async def welcome(email: str) -> None:
    pass

@listener("boom", retries=1, backoff=0)
def explode() -> None:
    raise RuntimeError("on purpose")

@listener("made.*", "made.exact")
async def glob(n: int) -> None:
    pass

@listener("paced", rate="50/s")
async def paced() -> None:
    pass
'''


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = reply.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_the_counters_timings_and_queue_are_scraped(short_dir: Path) -> None:
    port = _free_port()
    config = f'[metrics]\nlisten = "127.0.0.1:{port}"\n'
    with running(short_dir, listeners=LISTENERS, config=config) as daemon:
        for _ in range(3):
            assert daemon.cli("emit", "user_created", "email=ada@example.com").returncode == 0
        for n in range(3):  # made-up ids: one series, however many
            assert daemon.cli("emit", f"made_up_{n}").returncode == 0
        assert daemon.cli("emit", "user_created", "wrong=1").returncode == 1
        assert daemon.cli("emit", "boom").returncode == 0
        wait_for(lambda: daemon.json("queue")["failed"] == 1)
        found = _scrape(port)
        status = daemon.json("status")
    welcome = (("listener", "recorder:welcome"),)
    explode = (("listener", "recorder:explode"),)
    assert found[("eventbus_events_emitted_total", (("event", "user_created"),))] == 3
    assert found[("eventbus_events_unrouted_total", ())] == 3
    assert not any("made_up" in str(labels) for _, labels in found)
    assert found[("eventbus_events_refused_total",
                  (("code", "bad_arguments"), ("event", "user_created")))] == 1
    assert found[("eventbus_deliveries_succeeded_total", welcome)] == 3
    assert found[("eventbus_deliveries_started_total", explode)] == 2
    assert found[("eventbus_deliveries_retried_total", explode)] == 1
    assert found[("eventbus_deliveries_failed_total", explode)] == 1
    assert found[("eventbus_delivery_duration_seconds_count", welcome)] == 3
    assert found[("eventbus_delivery_duration_seconds_bucket", (("le", "+Inf"), *welcome))] == 3
    assert found[("eventbus_delivery_wait_seconds_count", explode)] == 2
    assert found[("eventbus_queue_deliveries", (("state", "failed"),))] == 1
    assert found[("eventbus_connections_open", ())] >= 0
    assert status["metrics"] == f"http://127.0.0.1:{port}/metrics"


def test_only_get_metrics_is_answered(short_dir: Path) -> None:
    port = _free_port()
    with running(short_dir, listeners=LISTENERS,
                 config=f'[metrics]\nlisten = "127.0.0.1:{port}"\n'):
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10)
        assert caught.value.code == 404
        caught.value.close()
        assert _scrape(port)  # and the daemon goes on


@pytest.mark.process
def test_a_port_in_use_stops_start_up_naming_the_key(short_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        daemon = Daemon(short_dir, listeners=LISTENERS,
                        config=f'[metrics]\nlisten = "127.0.0.1:{port}"\n').start(wait=False)
        assert daemon.process is not None
        assert daemon.process.wait(timeout=30) == 1
    assert f"metrics.listen: cannot listen on 127.0.0.1:{port}" in daemon.logs()


def test_a_listen_address_that_is_not_host_port_is_a_config_error(short_dir: Path) -> None:
    daemon = Daemon(short_dir, listeners=LISTENERS, config='[metrics]\nlisten = "9464"\n')
    result = daemon.cli("--config", str(daemon.config), "serve")
    assert result.returncode == 1
    assert 'metrics.listen: expected "host:port"' in result.stderr


SCHEDULED = LISTENERS + '''
from eventbus_cli import cron

new_year = cron("0 3 1 1 *", "user_created", kwargs={"email": "ada@example.com"},
                name="new_year")
'''


def test_a_paused_listener_and_rate_waits_are_scraped(short_dir: Path) -> None:
    port = _free_port()
    config = f'[metrics]\nlisten = "127.0.0.1:{port}"\n'
    with running(short_dir, listeners=LISTENERS, config=config) as daemon:
        assert daemon.cli("listeners", "pause", "recorder:welcome").returncode == 0
        with _client(daemon) as client:
            for _ in range(5):
                client.emit("paced")
            assert client.join(30)
        found = _scrape(port)
    assert found[("eventbus_listener_paused", (("listener", "recorder:welcome"),))] == 1
    assert found[("eventbus_rate_limited_waits_total", (("listener", "recorder:paced"),))] >= 1


def _client(daemon: Daemon) -> Client:
    return Client(daemon.socket)


def test_a_schedule_fire_counts_as_an_emit_of_its_event(short_dir: Path) -> None:
    port = _free_port()
    with running(short_dir, listeners=SCHEDULED,
                 config=f'[metrics]\nlisten = "127.0.0.1:{port}"\n') as daemon:
        assert daemon.cli("emit", "user_created", "email=ada@example.com").returncode == 0
        assert daemon.cli("schedule", "run", "new_year").returncode == 0
        welcome = (("listener", "recorder:welcome"),)
        wait_for(lambda: _scrape(port)[("eventbus_deliveries_succeeded_total", welcome)] == 2)
        found = _scrape(port)
    assert found[("eventbus_schedule_fires_total", (("schedule", "new_year"),))] == 1
    assert found[("eventbus_events_emitted_total", (("event", "user_created"),))] == 2


@pytest.mark.process  # its own descriptor limit
def test_a_flood_of_connections_to_the_metrics_port_is_survived(short_dir: Path) -> None:
    """Any local user may connect to the metrics port: idle connections by the hundred,
    past the daemon's descriptors, cost scrapes for a while, never the daemon."""
    port = _free_port()
    config = f'[metrics]\nlisten = "127.0.0.1:{port}"\n'
    with running(short_dir, listeners=LISTENERS, config=config, max_files=64) as daemon:
        held = []
        try:
            for _ in range(120):  # more than the daemon has descriptors for
                with contextlib.suppress(OSError):
                    held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            assert len(held) == 120
            assert daemon.cli("emit", "user_created", "email=held@b").returncode == 0
            assert daemon.alive  # the scrapes past the few answered at once were closed
        finally:
            for sock in held:
                sock.close()
        assert daemon.alive
        wait_for(lambda: daemon.cli("emit", "user_created", "email=a@b").returncode == 0)
        wait_for(lambda: bool(_scrape_or_none(port)))
        assert daemon.alive


def _scrape_or_none(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
    try:
        return _scrape(port)
    except OSError:
        return None


def test_made_up_ids_a_glob_takes_are_counted_under_the_glob(short_dir: Path) -> None:
    port = _free_port()
    config = f'[metrics]\nlisten = "127.0.0.1:{port}"\n'
    with running(short_dir, listeners=LISTENERS, config=config) as daemon:
        for n in range(20):  # each a new id: one series, the glob's
            assert daemon.cli("emit", f"made.up{n}", "n:=1").returncode == 0
        assert daemon.cli("emit", "made.exact", "n:=1").returncode == 0
        assert daemon.cli("emit", "made.up99", "n=x").returncode == 1  # refused: same label
        found = _scrape(port)
    emitted = {labels: value for (name, labels), value in found.items()
               if name == "eventbus_events_emitted_total"}
    assert emitted == {(("event", "made.*"),): 20, (("event", "made.exact"),): 1}
    assert found[("eventbus_events_refused_total",
                  (("code", "bad_arguments"), ("event", "made.*")))] == 1
