"""The real `eventbus` command, run as a process."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

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
        "example:send_welcome_mail"
    ]
    # A project of its own: its socket, and the journal on.
    assert config.daemon.socket == tmp_path / "app" / ".eventbus" / "eventbus.sock"
    assert config.journal is not None
    assert config.journal.path == tmp_path / "app" / ".eventbus" / "eventbus.db"
    text = (tmp_path / "app" / "eventbus.toml").read_text()
    for table in ("[listeners.", "[[schedule]]", "[metrics]", "[backend]"):
        assert f"# {table}" in text  # the optional tables, commented, each with its line


def test_init_in_a_deep_folder_derives_a_short_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    assert run("init", str(deep)).returncode == 0
    socket = Config.from_toml(deep / "eventbus.toml").daemon.socket
    assert socket is not None
    assert len(str(socket)) <= 100
    assert socket.name.startswith("e" * 40)
    assert socket.suffix == ".sock"


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    assert run("init", cwd=tmp_path).returncode == 0
    (tmp_path / "eventbus.toml").write_text("[daemon]\nqueue_size = 5\n")
    refused = run("init", cwd=tmp_path)
    assert refused.returncode == 1
    assert "already exist" in refused.stderr
    assert "--force" in refused.stderr
    assert "queue_size = 5" in (tmp_path / "eventbus.toml").read_text()
    assert run("init", "--force", cwd=tmp_path).returncode == 0
    assert "queue_size" not in (tmp_path / "eventbus.toml").read_text()


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

    from eventbus_cli.cli.app import load_commands

    app = load_commands()

    commands = ["init", "serve", "emit", "status", "tail", "listeners", "listeners list",
                "listeners reload", "queue", "queue list", "queue show", "queue retry",
                "queue purge", "stop"]
    runner = CliRunner()
    for command in commands:
        result = runner.invoke(app, [*command.split(), "--help"], terminal_width=120)
        assert result.exit_code == 0, command
        assert f"Example: eventbus {command.split()[0]}" in result.output, command


def _commands() -> list[tuple[list[str], list[str], int]]:
    """Each command of the CLI, as --help knows it: its words, its options (long and short)
    and how many arguments it takes."""
    import typer.main

    from eventbus_cli.cli.app import load_commands

    app = load_commands()

    found = []

    def walk(command: Any, path: list[str]) -> None:
        options = [name for param in command.params for name in param.opts if name[0] == "-"]
        arguments = sum(not param.opts[0].startswith("-") for param in command.params)
        found.append((path, options, arguments))
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


def _reference() -> dict[tuple[str, ...], str]:
    """The documentation's CLI overview: each command's words, and what its entry says."""
    text = (REPO / "docs" / "reference" / "index.md").read_text()
    block = text.split("## Command line\n\n```\n", 1)[1].split("```", 1)[0]
    entries: dict[tuple[str, ...], str] = {}
    words: tuple[str, ...] = ()
    for line in block.splitlines():
        if line.startswith("eventbus"):
            tokens = line.split()[1:]
            words = tuple(itertools.takewhile(lambda t: t.isalpha() and t.islower(), tokens))
            entries[words] = entries.get(words, "") + " " + line
        else:  # a continued entry
            entries[words] += " " + line
    return entries


def test_the_cli_overview_lists_every_command_and_option_help_shows() -> None:
    reference = _reference()
    for path, options, arguments in _commands():
        if not options and not arguments and path:  # a group of commands: its own are listed
            continue
        entry = reference.get(tuple(path))
        assert entry is not None, f"`eventbus {' '.join(path)}` is not in the CLI overview"
        for option in options:
            if option != "--help":
                assert re.search(rf"{re.escape(option)}\b", entry), (path, option)
    listed = {words for words in reference if words}
    known = {tuple(path) for path, _, _ in _commands()}
    assert listed <= known, sorted(listed - known)


def test_emit_with_a_keyword_written_as_an_option_says_how_to_write_it() -> None:
    result = run("emit", "user_created", "--email=ada@example.com")
    assert result.returncode == 2
    assert "--email is no option of emit" in result.stderr
    assert "`eventbus emit EVENT email=ada@example.com`" in result.stderr
    misspelt = run("emit", "user_created", "--wiat")
    assert misspelt.returncode == 2
    assert "--wait" in misspelt.stderr  # typer's own "possible options"


def test_emit_options_known_ahead_are_the_commands() -> None:
    import typer.main

    from eventbus_cli.cli.app import EMIT_OPTIONS, load_commands

    group: Any = typer.main.get_command(load_commands("emit"))
    command = group.commands["emit"]
    options = {name for param in command.params for name in param.opts if name.startswith("--")}
    assert set(EMIT_OPTIONS) == options | {"--help"}
