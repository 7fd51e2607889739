"""The real `eventbus` command, run as a process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from eventbus_cli import Config, __version__, load_listeners
from tests.harness import EVENTBUS

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EVENTBUS, *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
    )


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout == f"eventbus {__version__}\n"


def test_init_writes_a_config_and_a_listener_that_load(tmp_path: Path) -> None:
    result = run("init", str(tmp_path / "app"))
    assert result.returncode == 0, result.stderr
    config = Config.from_toml(tmp_path / "app" / "eventbus.toml")
    assert config.daemon.listeners_dir == tmp_path / "app" / "listeners.d"
    assert [item.name for item in load_listeners(config.daemon.listeners_dir)] == [
        "send_welcome_mail"
    ]


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    assert run("init", cwd=tmp_path).returncode == 0
    (tmp_path / "eventbus.toml").write_text("[daemon]\nqueue_size = 5\n")
    refused = run("init", cwd=tmp_path)
    assert refused.returncode == 1
    assert "already exist" in refused.stderr
    assert "--force" in refused.stderr
    assert "queue_size = 5" in (tmp_path / "eventbus.toml").read_text()
    assert run("init", "--force", cwd=tmp_path).returncode == 0
    assert "queue_size = 10000" in (tmp_path / "eventbus.toml").read_text()


def test_quickstart_example_runs_the_repositorys_listeners() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "quickstart.py")],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert '"succeeded": 5' in result.stdout
    assert '"unrouted": 1' in result.stdout
    assert "would send a welcome mail to ada@example.com" in result.stderr
    assert "would tell customer support why a user left: moved to a cabin" in result.stderr


def test_the_package_loads_anyio_only_when_an_emitter_is_used() -> None:
    """The client path (`eventbus emit`) must start fast: no anyio until an emitter is needed."""
    code = (
        "import sys, eventbus_cli, eventbus_cli.config, eventbus_cli.daemon.loader\n"
        "assert 'anyio' not in sys.modules, 'anyio imported too early'\n"
        "eventbus_cli.SimpleEventEmitter\n"
        "assert 'anyio' in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr


def test_every_command_has_help_with_an_example() -> None:
    from typer.testing import CliRunner

    from eventbus_cli.cli.app import app

    commands = ["init", "serve", "emit", "status", "tail", "listeners", "listeners list",
                "listeners reload", "queue", "queue list", "queue show", "queue retry",
                "queue purge", "stop"]
    runner = CliRunner()
    for command in commands:
        result = runner.invoke(app, [*command.split(), "--help"], terminal_width=120)
        assert result.exit_code == 0, command
        assert f"Example: eventbus {command.split()[0]}" in result.output, command
