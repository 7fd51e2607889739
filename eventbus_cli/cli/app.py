"""The ``eventbus`` command: each command parses, calls one library function, and renders.

The emit path stays light: rich and anyio are imported only by the commands that need them.
"""

# No `from __future__ import annotations` here: Typer reads every annotation at start-up,
# and string annotations would make it evaluate each one again on every run.
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from .._version import __version__
from ..client import DEFAULT_TIMEOUT, Client
from ..errors import (
    ArgumentError,
    EventbusError,
    NoDaemonError,
    RemoteError,
)
from ..names import is_pattern

if TYPE_CHECKING:
    from ..config import Config

_socket_source = ""
"""Where the socket this command uses came from, for the no-daemon error."""
_trusted_uids: tuple[int, ...] = ()
"""Users besides this one and root whose daemon this command may talk to (allow_uids)."""

app = typer.Typer(help="A local event bus for Python applications.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
"""The ``eventbus`` command; its commands register as their modules load: take it from
:func:`load_commands` to have every one."""
listeners_app = typer.Typer(
    help="The daemon's listeners: list them, or reload them from their directory.\n\n"
         "Example: eventbus listeners list --json", no_args_is_help=True)
queue_app = typer.Typer()  # its help is the queue callback's docstring
events_app = typer.Typer()  # its help is the events callback's docstring
schedule_app = typer.Typer(
    help="The daemon's cron and every schedules: list them, or fire one now.\n\n"
         "Example: eventbus schedule list", no_args_is_help=True)
app.add_typer(listeners_app, name="listeners")
app.add_typer(queue_app, name="queue")
app.add_typer(events_app, name="events")
app.add_typer(schedule_app, name="schedule")

SocketOption = Annotated[Path | None, typer.Option(
    "--socket", help="The daemon's socket (env EVENTBUS_SOCKET; default: from the config).")]
ConfigOption = Annotated[Path | None, typer.Option(
    "--config", help="The config file (env EVENTBUS_CONFIG; default: eventbus.toml, here or up).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"
    critical = "critical"


class State(StrEnum):
    pending = "pending"
    running = "running"
    retrying = "retrying"
    scheduled = "scheduled"
    failed = "failed"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"eventbus {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    socket: SocketOption = None,
    config: ConfigOption = None,
    version: Annotated[bool, typer.Option(
        "--version", callback=_show_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """A local event bus for Python applications."""
    ctx.obj = {"socket": socket, "config": config}


def refuse(problem: str) -> NoReturn:
    """End a command that was called wrong: ``problem`` (with its fix) on stderr, exit
    status 2, as for any other usage error."""
    typer.echo(f"Usage error: {problem}", err=True)
    raise typer.Exit(2)


@contextmanager
def reported(as_json: bool = False) -> Iterator[None]:
    """Turn library errors into a message on stderr and the exit code they call for; with
    ``as_json``, also into ``{"error": {"code", "message", ...}}`` on stdout, so a script
    reading the JSON learns of them too."""
    try:
        yield
    except NoDaemonError as exc:
        _json_error(as_json, "no_daemon", str(exc), socket=str(exc.socket))
        typer.echo(f"error: {exc}", err=True)
        if _socket_source:
            typer.echo(f"  (the socket came from {_socket_source})", err=True)
        raise typer.Exit(3) from None
    except ArgumentError as exc:
        raise typer.BadParameter(exc.problem, param_hint=f"'{exc.option} {exc.value}'") from None
    except RemoteError as exc:
        _json_error(as_json, exc.code, exc.message, **exc.details)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except EventbusError as exc:
        _json_error(as_json, "client", str(exc))
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _json_error(as_json: bool, code: str, message: str, **details: object) -> None:
    if as_json:
        typer.echo(json.dumps({"error": {"code": code, "message": message, **details}}))


def config_for(ctx: typer.Context, **flags: Any) -> "Config":
    from ..config import resolve_config

    root = ctx.find_root()
    given = root.obj or root.params
    return resolve_config(given.get("config"), socket=given.get("socket"), **flags)


def _socket(ctx: typer.Context) -> Path:
    """The daemon's socket, by the precedence of :func:`resolve_config`. A flag or
    EVENTBUS_SOCKET decides it without reading the config, which keeps `emit` quick to start."""
    global _socket_source
    root = ctx.find_root()
    # During shell completion the root callback has not run: read its parameters instead.
    given: Path | str | None = (root.obj or {}).get("socket") or root.params.get("socket")
    if given:
        _socket_source = "--socket"
        return Path(given).expanduser().absolute()
    if os.environ.get("EVENTBUS_SOCKET"):
        _socket_source = "EVENTBUS_SOCKET"
        return Path(os.environ["EVENTBUS_SOCKET"]).expanduser().absolute()
    global _trusted_uids
    config = config_for(ctx)
    _trusted_uids = config.daemon.allow_uids
    if config.path is not None:
        _socket_source = f"the config {config.path.absolute()}"
    else:
        _socket_source = (f"the defaults: no eventbus.toml in {Path.cwd()} or any folder above "
                          "it, and no --config or EVENTBUS_CONFIG")
    return config.daemon.socket_path


def _listener_ids(ctx: typer.Context, incomplete: str) -> list[str]:
    try:
        with client_for(ctx, timeout=2) as client:
            listeners = client.listeners()
    except Exception:  # a completion offers nothing rather than a traceback
        return []
    ids = {event for item in listeners for event in item.events}
    return sorted(event for event in ids if event.startswith(incomplete))


def complete_events(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion for emit: the running daemon's event ids one can emit (no globs)."""
    return [event for event in _listener_ids(ctx, incomplete) if not is_pattern(event)]


def complete_patterns(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion for tail: the ids and globs of the running daemon's listeners."""
    return _listener_ids(ctx, incomplete)


def client_for(ctx: typer.Context, timeout: float = DEFAULT_TIMEOUT) -> Client:
    socket_path = _socket(ctx)  # first: it decides the uids to trust
    return Client(socket_path, timeout=timeout, trusted_uids=_trusted_uids)


def reconnect(ctx: typer.Context, what: str) -> Client:
    """The daemon went away (it stopped, or restarts): say so on stderr, and return a
    client once it answers again, trying every half second until Ctrl-C, as ``tail -F``
    follows a file that was replaced."""
    import time

    typer.echo(f"the daemon went away (stopped or restarting); {what} waits for it to come "
               "back (Ctrl-C to stop)", err=True)
    while True:
        try:
            client = client_for(ctx)
        except EventbusError:
            time.sleep(0.5)
            continue
        typer.echo(f"the daemon answers again on {client.socket_path}: {what} goes on",
                   err=True)
        return client


def wire(result: Any) -> Any:
    """A client's result (a Struct of ``protocol.results``, or a list of them) as the
    document the daemon sent: what ``--json`` prints and the renderers read."""
    from msgspec import to_builtins

    return to_builtins(result)


def show(result: Any, as_json: bool, printer: str, **options: Any) -> None:
    """Print ``result`` as JSON, or with ``render``'s function ``printer`` (and options)."""
    document = wire(result)
    if as_json:
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    from . import render

    getattr(render, printer)(document, **options)


def main() -> None:
    """Console-script entry point."""
    # Events may carry lone surrogates (valid JSON, not UTF-8): print them as escapes.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    if misplaced := _global_option_after_command(sys.argv[1:]):
        option, command = misplaced
        typer.echo(f"Usage error: {option} is a global option, so it goes before the "
                   f"command: `eventbus {option} ... {command} ...`", err=True)
        sys.exit(2)
    if (keyword := _keyword_as_option(sys.argv[1:])) is not None:
        name, value = keyword
        typer.echo(f"Usage error: --{name} is no option of emit. To send the keyword argument "
                   f"{name}, write it without dashes: `eventbus emit EVENT {name}={value}` "
                   f"(or --kw {name}={value})", err=True)
        sys.exit(2)
    load_commands(_command_name(sys.argv[1:]))
    _app_for(sys.argv[1:])()


def _app_for(args: list[str]) -> typer.Typer:
    """``app`` with only the command that ``args`` name: typer builds the click command of
    every command it holds on each run, which costs `eventbus emit` milliseconds it need
    not spend. Without a known command (``--help``, a typo) it is ``app`` itself."""
    name = _command_name(args)
    commands = [info for info in app.registered_commands
                if (info.name or getattr(info.callback, "__name__", "").replace("_", "-"))
                == name]
    groups = [info for info in app.registered_groups if info.name == name]
    if not commands and not groups:
        return app
    only = typer.Typer(**{key: getattr(app.info, key) for key in ("help", "no_args_is_help")},
                       pretty_exceptions_enable=False)
    only.registered_callback = app.registered_callback
    only.registered_commands, only.registered_groups = commands, groups
    return only


def _command_name(args: list[str]) -> str | None:
    """The command ``args`` name: the first word that is not an option or its value."""
    rest = iter(args)
    for arg in rest:
        if arg in _GLOBAL_OPTIONS:
            next(rest, None)
        elif not arg.startswith("-"):
            return arg
    return None


_GLOBAL_OPTIONS = ("--socket", "--config")


def _global_option_after_command(args: list[str]) -> tuple[str, str] | None:
    """The first global option given after the command (which click would call unknown),
    with the command; None if there is none."""
    command: str | None = None
    rest = iter(args)
    for arg in rest:
        if arg == "--":
            return None
        name = arg.partition("=")[0]
        if command is None:
            if name in _GLOBAL_OPTIONS and "=" not in arg:
                next(rest, None)  # its value
            elif not arg.startswith("-"):
                command = arg
        elif name in _GLOBAL_OPTIONS:
            return name, command
    return None


EMIT_OPTIONS = ("--arg", "--kw", "--file", "--wait", "--timeout", "--require-listener",
                "--no-check", "--delay", "--at", "--key", "--priority", "--order-key",
                "--dry-run", "--json", "--help")
"""The options of ``emit`` (a test checks them against the command), known without building
it: ``emit --email=x`` is then told it meant ``email=x``."""


def _keyword_as_option(args: list[str]) -> tuple[str, str] | None:
    """A keyword argument of ``emit`` written as an option (``--email=x``): its name and
    value, where the option is none of emit's."""
    if _command_name(args) != "emit":
        return None
    rest = iter(args[args.index("emit") + 1:])
    for arg in rest:
        if arg == "--":
            return None
        name, equals, value = arg.partition("=")
        if name.startswith("--") and name not in EMIT_OPTIONS and name[2:].isidentifier():
            import difflib

            if difflib.get_close_matches(name, EMIT_OPTIONS, n=1, cutoff=0.75):
                return None  # a misspelt option: typer says which it may be
            if not equals:
                value = next(rest, "...")
            return name[2:], value
    return None


_COMMAND_MODULES = {"init": "daemon", "serve": "daemon", "status": "daemon", "stop": "daemon",
                    "tail": "daemon", "listeners": "daemon", "emit": "emit", "events": "events",
                    "queue": "queue", "schedule": "schedule", "relay": "relay",
                    "dashboard": "dashboard"}
"""Which module of cli/ registers each command (on ``app`` or its sub-apps) when imported."""


def load_commands(name: str | None = None) -> typer.Typer:
    """``app`` with the commands of ``name`` registered, or all of them (for None, or a name
    that is no command): `eventbus emit` then imports emit's module alone."""
    from importlib import import_module

    modules = ({_COMMAND_MODULES[name]} if name in _COMMAND_MODULES
               else set(_COMMAND_MODULES.values()))
    for module in sorted(modules):
        import_module(f".{module}", __package__)
    return app
