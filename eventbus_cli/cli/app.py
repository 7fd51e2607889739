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
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .._version import __version__
from ..client import DEFAULT_TIMEOUT, Client, read_event_lines
from ..codec import DEFAULT_WAIT
from ..errors import ArgumentError, EventbusError, InvalidEventIdError, NoDaemonError
from ..names import is_pattern, validate_event_id
from .values import parse_arg, parse_kw

if TYPE_CHECKING:
    from ..config import Config

_socket_source = ""
"""Where the socket this command uses came from, for the no-daemon error."""
_trusted_uids: tuple[int, ...] = ()
"""Users besides this one and root whose daemon this command may talk to (allow_uids)."""

app = typer.Typer(help="A local event bus for Python applications.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
listeners_app = typer.Typer(
    help="The daemon's listeners: list them, or reload them from their directory.\n\n"
         "Example: eventbus listeners list --json", no_args_is_help=True)
queue_app = typer.Typer()  # its help is the queue callback's docstring
app.add_typer(listeners_app, name="listeners")
app.add_typer(queue_app, name="queue")

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


@contextmanager
def _reported() -> Iterator[None]:
    """Turn library errors into a message on stderr and the exit code they call for."""
    try:
        yield
    except NoDaemonError as exc:
        typer.echo(f"error: {exc}", err=True)
        if _socket_source:
            typer.echo(f"  (the socket came from {_socket_source})", err=True)
        raise typer.Exit(3) from None
    except ArgumentError as exc:
        raise typer.BadParameter(exc.problem, param_hint=f"'{exc.option} {exc.value}'") from None
    except EventbusError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _config(ctx: typer.Context, **flags: Any) -> "Config":
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
    config = _config(ctx)
    _trusted_uids = config.daemon.allow_uids
    if config.path is not None:
        _socket_source = f"the config {config.path.absolute()}"
    else:
        _socket_source = (f"the defaults: no eventbus.toml in {Path.cwd()} or any folder above "
                          "it, and no --config or EVENTBUS_CONFIG")
    return config.daemon.socket_path


def _listener_ids(ctx: typer.Context, incomplete: str) -> list[str]:
    try:
        with _client(ctx, timeout=2) as client:
            listeners = client.listeners()
    except Exception:  # a completion offers nothing rather than a traceback
        return []
    ids = {event for item in listeners for event in item["events"]}
    return sorted(event for event in ids if event.startswith(incomplete))


def _complete_events(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion for emit: the running daemon's event ids one can emit (no globs)."""
    return [event for event in _listener_ids(ctx, incomplete) if not is_pattern(event)]


def _complete_patterns(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion for tail: the ids and globs of the running daemon's listeners."""
    return _listener_ids(ctx, incomplete)


def _client(ctx: typer.Context, timeout: float = DEFAULT_TIMEOUT) -> Client:
    socket_path = _socket(ctx)  # first: it decides the uids to trust
    return Client(socket_path, timeout=timeout, trusted_uids=_trusted_uids)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Where to write the files.")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Write eventbus.toml and listeners.d/example.py.

    Example: eventbus init myapp
    """
    from .scaffold import init_project

    with _reported():
        written = init_project(directory, force=force)
    for path in written:
        typer.echo(f"wrote {path}")


@app.command()
def serve(
    ctx: typer.Context,
    listeners_dir: Annotated[Path | None, typer.Option(
        "--listeners-dir", help="Load listeners from here (default: from the config).")] = None,
    log_level: Annotated[LogLevel | None, typer.Option(
        "--log-level", help="Log this and above to stderr (default: from the config).")] = None,
) -> None:
    """Run the daemon in the foreground until SIGTERM or Ctrl-C.

    Example: eventbus serve --listeners-dir listeners.d
    """
    from ..daemon.server import run

    with _reported():
        settings = _config(ctx, listeners_dir=listeners_dir,
                           log_level=log_level.value if log_level else None)
        code = run(settings)
    raise typer.Exit(code)


@app.command()
def emit(
    ctx: typer.Context,
    event: Annotated[str | None, typer.Argument(
        help="The event id, e.g. user_created.", autocompletion=_complete_events)] = None,
    items: Annotated[list[str] | None, typer.Argument(
        help="Keyword arguments as KEY=text, KEY:=JSON, KEY=@file or KEY:=@file items, as "
        "--kw takes them.", show_default=False)] = None,
    arg: Annotated[list[str] | None, typer.Option(
        "--arg", help="A positional value: text, :=JSON, @file or :=@file. Repeatable.")] = None,
    kw: Annotated[list[str] | None, typer.Option(
        "--kw", help="KEY=text, KEY:=JSON, KEY=@file or KEY:=@file. Repeatable.")] = None,
    file: Annotated[str | None, typer.Option(
        "--file", help='Emit each line of this file (- for stdin): {"event", "args", "kwargs"}.'
    )] = None,
    wait: Annotated[bool, typer.Option(
        "--wait", help="Wait until every delivery has finished; exit 1 if any failed.")] = False,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", min=0.001, help="With --wait: give up waiting after this many seconds "
        "(default 60).")] = None,
    require_listener: Annotated[bool, typer.Option(
        "--require-listener", help="Refuse the event (exit 1) if no listener matches it.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Send an event to the daemon; return once it is accepted (with --wait, once handled).

    Example: eventbus emit user_created email=ada@example.com admin:=true --wait
    """
    if file is not None:
        if event is not None or items or arg or kw or wait or require_listener:
            raise typer.BadParameter("give either EVENT with --arg/--kw/--wait, or --file",
                                     param_hint="--file")
        _emit_file(ctx, file, as_json)
        return
    if timeout is not None and not wait:
        raise typer.BadParameter("--timeout goes with --wait", param_hint="--timeout")
    if event is None:
        raise typer.BadParameter("give the event id to emit, or --file", param_hint="EVENT")
    with _reported():
        try:
            validate_event_id(event)
        except InvalidEventIdError as exc:
            raise typer.BadParameter(str(exc), param_hint="EVENT") from None
        args = [parse_arg(value) for value in arg or ()]
        kwargs = dict(parse_kw(value) for value in [*(kw or ()), *(items or ())])
        seconds = timeout or DEFAULT_WAIT
        with _client(ctx, seconds + 30 if wait else DEFAULT_TIMEOUT) as client:
            result = client.submit(event, args, kwargs, wait=seconds if wait else None,
                                   require_listener=require_listener)
    deliveries, results = result["deliveries"], result.get("results")
    if as_json:
        typer.echo(json.dumps(result))
    elif results is None:
        typer.echo(f"{event}: {deliveries} deliveries queued")
    else:
        typer.echo(f"{event}: {deliveries} deliveries")
        for item in results:
            outcome = "ok" if item["ok"] else f"failed: {item['error']}" if item["ok"] is False \
                else f"unfinished: {item['error']}"
            typer.echo(f"  {item['listener']}: {outcome}")
    if not deliveries:
        typer.echo(f"warning: no listener matches {event!r}; the daemon counted it as unrouted",
                   err=True)
    if results is not None and not all(item["ok"] for item in results):
        raise typer.Exit(1)


def _emit_file(ctx: typer.Context, file: str, as_json: bool) -> None:
    with _reported():
        if file == "-":
            lines, numbers = read_event_lines(sys.stdin.buffer, "stdin")
        else:
            try:
                with open(file, "rb") as stream:
                    lines, numbers = read_event_lines(stream, file)
            except OSError as exc:
                raise EventbusError(f"cannot read {file}: {exc.strerror}") from None
        with _client(ctx) as client:
            if sys.stderr.isatty() and not as_json:
                from .render import progress_bar

                with progress_bar(len(lines), "emitting") as advance:
                    result = client.emit_lines(lines, progress=advance)
            else:
                result = client.emit_lines(lines)
    summary = {"events": result.total, "accepted": result.accepted,
               "deliveries": result.deliveries, "unrouted": result.unrouted}
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(f"{result.accepted} of {result.total} events accepted: "
                   f"{result.deliveries} deliveries queued, {result.unrouted} unrouted")
    if result.error is not None:
        typer.echo(f"error: {result.error}; {_not_accepted(result.rejected, numbers)}", err=True)
        raise typer.Exit(1)


def _not_accepted(rejected: tuple[tuple[int, int], ...], numbers: list[int]) -> str:
    """Which lines of the file to emit again, exactly: the accepted ones must not be."""
    if len(rejected) == 1 and rejected[0][1] == len(numbers):
        return (f"line {numbers[rejected[0][0]]} and the lines after it were not accepted; "
                "emit them again from there")
    spans = ", ".join(f"{numbers[start]}" if stop - start == 1
                      else f"{numbers[start]}-{numbers[stop - 1]}" for start, stop in rejected)
    return (f"lines {spans} were not accepted (the others were); emit those again, and only "
            "those")


@listeners_app.command("list")
def listeners_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show the listeners the daemon runs: name, module, event ids and options.

    Example: eventbus listeners list --json
    """
    with _reported(), _client(ctx) as client:
        listeners = client.listeners()
    _show(listeners, as_json, "print_listeners")


@listeners_app.command("reload")
def listeners_reload(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Import the listeners directory again and swap the new set in (as SIGHUP does).

    A file that fails changes nothing: the daemon keeps running the listeners it had.

    Example: eventbus listeners reload
    """
    with _reported(), _client(ctx) as client:
        changes = client.reload()
    if as_json:
        typer.echo(json.dumps(changes))
        return
    typer.echo(f"reloaded {changes['listeners']} listeners; added: "
               f"{', '.join(changes['added']) or 'none'}; removed: "
               f"{', '.join(changes['removed']) or 'none'}")
    if changes["failed"]:
        typer.echo(f"warning: {changes['failed']} waiting deliveries of removed listeners "
                   "moved to the failed list", err=True)


@queue_app.callback(invoke_without_command=True)
def queue(
    ctx: typer.Context,
    watch: Annotated[bool, typer.Option(
        "--watch", help="Keep the view live, with rates per listener, until Ctrl-C.")] = False,
    interval: Annotated[float | None, typer.Option(
        "--interval", min=0.1, help="With --watch: seconds between refreshes (default 1).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show the queue's counters, in total and per listener; or its deliveries.

    With --watch on a terminal the view stays live; piped, or with --json, it prints one
    line (a JSON line with --json) per interval.

    Example: eventbus queue --watch   (or: eventbus queue list --state failed)
    """
    if ctx.invoked_subcommand is not None:
        return
    if interval is not None and not watch:
        raise typer.BadParameter("--interval goes with --watch", param_hint="--interval")
    if watch:
        with _reported(), _client(ctx) as client:
            if as_json or not sys.stdout.isatty():
                _watch_lines(client, interval or 1.0, as_json)
            else:
                from .render import watch_queue

                watch_queue(client.queue, interval or 1.0)
        return
    with _reported(), _client(ctx) as client:
        counters = client.queue()
    _show(counters, as_json, "print_queue")


def _watch_lines(client: Client, interval: float, as_json: bool) -> None:
    """One line of counters per ``interval`` until Ctrl-C: for pipes, logs and scripts."""
    import time

    try:
        while True:
            queue = client.queue()
            if as_json:
                typer.echo(json.dumps(queue))
            else:
                counts = ("pending", "running", "retrying", "succeeded", "failed", "unrouted",
                          "failed_list")
                typer.echo(" ".join(f"{name}={queue.get(name, 0)}" for name in counts))
            sys.stdout.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        return


@queue_app.command("list")
def queue_list(
    ctx: typer.Context,
    state: Annotated[State | None, typer.Option("--state", help="Only deliveries in this state.")
                     ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Show at most N.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List deliveries: pending, running, retrying and failed (or one state).

    Example: eventbus queue list --state failed --limit 20
    """
    with _reported(), _client(ctx) as client:
        deliveries = client.deliveries(state.value if state else None, limit)
    _show(deliveries, as_json, "print_deliveries")


@queue_app.command("show")
def queue_show(
    ctx: typer.Context,
    delivery: Annotated[int, typer.Argument(help="The delivery's id.", min=1)],
    as_json: JsonOption = False,
) -> None:
    """Show one delivery with the full traceback of its last failure.

    Example: eventbus queue show 42
    """
    with _reported(), _client(ctx) as client:
        found = client.delivery(delivery)
    _show(found, as_json, "print_delivery")


@queue_app.command("requeue", help="The same as `queue retry`, as RQ users type it.\n\n"
                   "Example: eventbus queue requeue 41 42")
@queue_app.command("retry")
def queue_retry(
    ctx: typer.Context,
    deliveries: Annotated[list[int] | None, typer.Argument(
        help="Ids of failed deliveries.", min=1, show_default=False)] = None,
    every: Annotated[bool, typer.Option("--all", help="Retry every failed delivery.")] = False,
) -> None:
    """Queue failed deliveries again, attempts counted afresh.

    Example: eventbus queue retry 41 42   (or: eventbus queue retry --all)
    """
    if every == bool(deliveries):
        raise typer.BadParameter("give delivery ids, or --all", param_hint="DELIVERIES")
    with _reported(), _client(ctx) as client:
        retried = client.retry(None if every else deliveries)
    typer.echo(f"{len(retried)} deliveries queued again")


@queue_app.command("purge")
def queue_purge(
    ctx: typer.Context,
    failed: Annotated[bool, typer.Option("--failed", help="Drop the failed list.")] = False,
    pending: Annotated[bool, typer.Option(
        "--pending", help="Drop the deliveries waiting to run (pending and retrying).")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask first.")] = False,
) -> None:
    """Drop failed deliveries, or those waiting to run; running calls finish.

    Example: eventbus queue purge --failed --yes
    """
    if failed == pending:
        raise typer.BadParameter("give one of --failed or --pending", param_hint="--failed")
    state = "failed" if failed else "pending"
    if not yes:
        if not sys.stdin.isatty():
            raise typer.BadParameter("not on a terminal, so nothing can ask first; pass --yes",
                                     param_hint="--yes")
        typer.confirm(f"Drop every {state} delivery? They cannot be brought back", abort=True)
    with _reported(), _client(ctx) as client:
        purged = client.purge(state)
    typer.echo(f"{purged} {state} deliveries purged")


@app.command()
def status(
    ctx: typer.Context,
    check: Annotated[bool, typer.Option(
        "--check", help="One line; exit 0 healthy, 1 unhealthy (says why), 3 no daemon.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Show the daemon's pid, version, uptime, socket, config, listeners and queue.

    Example: eventbus status --check   (a health probe)
    """
    with _reported(), _client(ctx) as client:
        document = client.status()
    if not check:
        _show(document, as_json, "print_status")
        return
    health, queue = document["health"], document["queue"]
    if as_json:
        typer.echo(json.dumps(health))
    elif health["healthy"]:
        typer.echo(f"healthy: {document['listeners']} listeners, {queue['pending']} pending, "
                   f"{queue['running']} running, no failures in the last minute")
    else:
        typer.echo("unhealthy: " + "; ".join(health["problems"]))
    raise typer.Exit(0 if health["healthy"] else 1)


@app.command()
def stop(
    ctx: typer.Context,
    no_drain: Annotated[bool, typer.Option(
        "--no-drain", help="Stop at once; what is still waiting or running is not finished "
        "(kept for the next start with a journal, else lost).")] = False,
    timeout: Annotated[float, typer.Option(
        "--timeout", min=0.1, help="Give up waiting for the daemon to exit after this many "
        "seconds.")] = 60.0,
) -> None:
    """Stop the daemon, as SIGTERM does: it refuses new events, drains, and exits.

    Example: eventbus stop   (or: eventbus stop --no-drain)
    """
    import signal
    import time

    with _reported(), _client(ctx) as client:
        pid = int(client.status()["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
        if no_drain:  # a signal after the first one stops without draining
            os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        typer.echo(f"stopped (pid {pid} had already exited)")
        return
    except PermissionError:
        typer.echo(f"error: pid {pid} belongs to another user; stop it as that user", err=True)
        raise typer.Exit(1) from None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            typer.echo(f"stopped (pid {pid})")
            return
        time.sleep(0.05)
    typer.echo(f"error: pid {pid} is still running after {timeout:g}s (still draining? "
               "`eventbus stop --no-drain` stops it at once)", err=True)
    raise typer.Exit(1)


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, exited but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True


@app.command()
def tail(
    ctx: typer.Context,
    patterns: Annotated[list[str] | None, typer.Argument(
        help="Only events whose id matches one of these globs (e.g. 'user_*').",
        show_default=False, autocompletion=_complete_patterns)] = None,
    as_json: JsonOption = False,
) -> None:
    """Follow the bus live: events emitted and each delivery's start and outcome.

    One line per record, until Ctrl-C. A reader that falls behind loses records, and a
    "skipped" line says how many; the bus never waits for it.

    Example: eventbus tail 'user_*' --json
    """
    from .render import tail_line

    with _reported(), _client(ctx) as client:
        try:
            for record in client.subscribe(patterns or ()):
                typer.echo(json.dumps(record) if as_json else tail_line(record))
        except KeyboardInterrupt:
            return
    typer.echo("error: the daemon closed the connection (it stopped); nothing more to tail",
               err=True)
    raise typer.Exit(1)


def _show(document: Any, as_json: bool, printer: str) -> None:
    if as_json:
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    from . import render

    getattr(render, printer)(document)


def main() -> None:
    """Console-script entry point."""
    # Events may carry lone surrogates (valid JSON, not UTF-8): print them as escapes.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    app()
