"""Each example runs as its header says, on a real daemon, and does what it claims."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.postgres_server import PostgresServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(("script", "expected"), [
    ("welcome_mail.py", ["send_welcome_mail: ok", "would send a welcome mail to ada@example.com"]),
    ("one_handler_two_events.py", ["would mail ada@example.com: Welcome aboard.",
                                   "would mail ada@example.com: Your password was changed."]),
    ("user_deleted.py", ["send_farewell_email_handler: ok", "notify_customer_support: ok",
                         "why a user left: moved to a cabin"]),
    ("user_deleted_without_kwargs.py", [
        "user_deleted would reach 2 listeners:",
        ":notify_customer_support(reason: str): does not take the keyword 'email' (add "
        "**kwargs to it, or send only reason)",
        ":send_farewell_email_handler: failed: TypeError: listener "
        "user_deleted_without_kwargs:send_farewell_email_handler "
        "does not accept the arguments of event 'user_deleted': got an unexpected keyword "
        "argument 'reason'", "$ eventbus queue list --state failed", "│ failed │"]),
    ("tracing.py", ["span 'deliver user_created -> welcome:send_welcome_mail': trace ",
                    "span 'POST /users': trace "]),
    ("litestar_app.py", ["created ada@example.com", "deleted ada@example.com",
                         "the daemon ran 4 deliveries:",
                         "would tell customer support why a user left: moved to a cabin"]),
    ("outbox_app.py", ["POST /users ada@example.com: 409", "the daemon ran 4 deliveries:",
                       "would send a welcome mail to bob@example.com"]),
    ("two_hosts.py", ["ran by host: host-a ", ", host-b ", "300 deliveries, each run once: True"]),
    ("emit_from_python.py", ["Client.emit queued 1 delivery", "AsyncClient.emit queued 1",
                             "would send a welcome mail to eve@example.com"]),
])
def test_example_runs_as_its_header_says(script: str, expected: list[str]) -> None:
    header = (EXAMPLES / script).read_text().split('"""')[1]
    assert f".venv/bin/python examples/{script}" in header
    result = subprocess.run([sys.executable, str(EXAMPLES / script)], capture_output=True,
                            text=True, timeout=120, check=False, cwd=EXAMPLES.parent)
    assert result.returncode == 0, result.stderr
    for text in expected:
        assert text in result.stdout, result.stdout


def test_two_hosts_share_a_bus_on_postgresql(postgres_server: PostgresServer) -> None:
    result = subprocess.run([sys.executable, str(EXAMPLES / "two_hosts.py"),
                             postgres_server.url()], capture_output=True, text=True,
                            timeout=120, check=False, cwd=EXAMPLES.parent)
    assert result.returncode == 0, result.stderr
    assert "ran by host: host-a " in result.stdout
    assert "300 deliveries, each run once: True" in result.stdout


def test_the_systemd_unit_is_type_notify_and_reloads_with_sighup() -> None:
    unit = (EXAMPLES / "eventbus.service").read_text()
    assert "\nType=notify\n" in unit
    assert "\nExecReload=/bin/kill -HUP $MAINPID\n" in unit
    assert " serve\n" in unit.split("ExecStart=")[1].split("\n")[0] + "\n"


PROGRAM = "%h/.local/share/eventbus/bin/eventbus"


def test_the_systemd_unit_runs_eventbus_where_the_docs_install_it() -> None:
    unit = (EXAMPLES / "eventbus.service").read_text()
    assert unit.split("\nExecStart=")[1].split()[0] == PROGRAM
    readme = (EXAMPLES.parent / "docs" / "production.md").read_text()
    install = "python3 -m venv ~/.local/share/eventbus && ~/.local/share/eventbus/bin/pip install ."
    assert install in readme
    assert install in unit


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze, systemd's own checker, is not on this machine "
                    "(the unit's paths are checked by the test above everywhere)")
def test_the_systemd_unit_verifies_clean(tmp_path: Path) -> None:
    unit = (EXAMPLES / "eventbus.service").read_text()
    # The unit as it is, but with the program this test run installed: the rest must verify.
    here = tmp_path / "eventbus.service"
    here.write_text(unit.replace(PROGRAM, str(Path(sys.executable).parent / "eventbus")))
    result = subprocess.run(["systemd-analyze", "verify", str(here)], capture_output=True,
                            text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "eventbus.service" not in result.stderr, result.stderr


def test_the_prometheus_example_scrapes_the_sample_configs_address() -> None:
    scrape = (EXAMPLES / "prometheus.yml").read_text()
    sample = (EXAMPLES / "eventbus.toml").read_text()
    listen = sample.split("# listen = ")[1].split()[0].strip('"')
    assert f'targets: ["{listen}"]' in scrape
