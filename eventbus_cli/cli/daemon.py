"""The daemon's commands: ``init``, ``serve``, ``status``, ``stop``, ``tail`` and ``listeners``."""

# No `from __future__ import annotations` here: Typer reads every annotation at start-up.
import json
import os
from pathlib import Path
from typing import Annotated

import typer

from ..errors import EventbusError, InvalidEventIdError, RemoteError
from ..names import validate_pattern
from ..plural import counted
from .app import (
    JsonOption,
    LogLevel,
    app,
    client_for,
    complete_patterns,
    config_for,
    listeners_app,
    reconnect,
    reported,
    show,
)
from .values import duration


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Where to write the files.")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Write eventbus.toml and listeners.d/example.py.

    Example: eventbus init myapp
    """
    from .scaffold import init_project

    with reported():
        written = init_project(directory, force=force)
    for path in written:
        typer.echo(f"wrote {path}")


@app.command()
def serve(
    ctx: typer.Context,
    listeners_dir: Annotated[Path | None, typer.Option(
        "--listeners-dir", help="Load listeners from here (default: from the config).")] = None,
    log_level: Annotated[LogLevel | None, typer.Option(
        "--log-level", case_sensitive=False,
        help="Log this and above to stderr (default: from the config).")] = None,
    reload: Annotated[bool, typer.Option(
        "--reload", help="Reload the listeners when their files change (development; needs "
        "the reload extra: watchfiles).")] = False,
) -> None:
    """Run the daemon in the foreground until SIGTERM or Ctrl-C.

    Example: eventbus serve --listeners-dir listeners.d --reload
    """
    from ..daemon.server import run

    with reported():
        settings = config_for(ctx, listeners_dir=listeners_dir,
                           log_level=log_level.value if log_level else None)
        code = run(settings, watch=reload)
    raise typer.Exit(code)


@listeners_app.command("list")
def listeners_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show the listeners the daemon runs: name, event ids, signature and options.

    Example: eventbus listeners list --json
    """
    with reported(as_json), client_for(ctx) as client:
        listeners = client.listeners()
    show(listeners, as_json, "print_listeners")


@listeners_app.command("reload")
def listeners_reload(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Import the listeners directory again and swap the new set in (as SIGHUP does).

    A file that fails changes nothing: the daemon keeps running the listeners it had.

    Example: eventbus listeners reload
    """
    with reported(as_json), client_for(ctx) as client:
        changes = client.reload()
    if as_json:
        show(changes, True, "")
        return
    typer.echo(f"reloaded {counted(changes.listeners, 'listener')}; added: "
               f"{', '.join(changes.added) or 'none'}; removed: "
               f"{', '.join(changes.removed) or 'none'}")
    if changes.failed:
        failed = counted(changes.failed, "waiting delivery", "waiting deliveries")
        typer.echo(f"warning: {failed} of removed listeners moved to the failed list", err=True)


@listeners_app.command("pause")
def listeners_pause(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The listener, as `listeners list` names it.")],
    seconds: Annotated[str | None, typer.Option(
        "--for", help="Resume by itself after this long: 90s, 10m, 2h, 1d.",
        show_default=False)] = None,
    as_json: JsonOption = False,
) -> None:
    """Pause a listener bus-wide: its deliveries wait (none fails) until it is resumed.

    Kept across restarts by a durable store.

    Example: eventbus listeners pause app:webhook --for 10m
    """
    for_seconds = None if seconds is None else duration(seconds, "--for")
    with reported(as_json), client_for(ctx) as client:
        state = client.pause(name, for_seconds)
    if as_json:
        show(state, True, "")
        return
    until = f" until {state.until}" if state.until else " until `eventbus listeners resume`"
    typer.echo(f"paused {state.listener}{until}: its deliveries wait, what runs finishes")


@listeners_app.command("resume")
def listeners_resume(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The paused listener.")],
    as_json: JsonOption = False,
) -> None:
    """Resume a paused listener: its waiting deliveries start again.

    Example: eventbus listeners resume app:webhook
    """
    with reported(as_json), client_for(ctx) as client:
        state = client.resume(name)
    if as_json:
        show(state, True, "")
        return
    typer.echo(f"resumed {state.listener}")


@app.command()
def status(
    ctx: typer.Context,
    check: Annotated[bool, typer.Option(
        "--check", help="One line; exit 0 healthy, 1 unhealthy (says why), 3 no daemon.")
    ] = False,
    acknowledge: Annotated[bool, typer.Option(
        "--acknowledge", help="First clear the problems that stay until an operator has "
        "seen them (data Redis lost), and print them.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Show the daemon's pid, version, uptime, socket, config, listeners and queue.

    Example: eventbus status --check   (a health probe)
    """
    with reported(as_json), client_for(ctx) as client:
        if acknowledge:
            for problem in client.acknowledge():
                typer.echo(f"acknowledged: {problem}", err=True)
        document = client.status()
    if not check:
        show(document, as_json, "print_status")
        return
    health, queue = document.health, document.queue
    if as_json:
        show(health, True, "")
    elif health.healthy:
        listeners = counted(document.listeners, "listener")
        typer.echo(f"healthy: {listeners}, {queue.pending} pending, "
                   f"{queue.running} running, no failures in the last minute")
    else:
        typer.echo("unhealthy: " + "; ".join(health.problems))
    raise typer.Exit(0 if health.healthy else 1)


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
    import time

    with reported(), client_for(ctx) as client:
        answer = client.call("stop", drain=not no_drain)
    pid, dropped = int(answer["pid"]), int(answer.get("dropped_scheduled", 0))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            typer.echo(f"stopped (pid {pid})")
            if dropped:
                typer.echo(f"warning: {counted(dropped, 'delivery')} emitted for later "
                           f"{'was' if dropped == 1 else 'were'} dropped: the daemon kept "
                           "them in memory (a [journal] keeps them across restarts)", err=True)
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
        show_default=False, autocompletion=complete_patterns)] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print each record as one line of JSON (JSON Lines).")] = False,
) -> None:
    """Follow the bus live: events emitted and each delivery's start and outcome.

    One line per record, until Ctrl-C; stderr says first what it follows. A reader that
    falls behind loses records, and a "skipped" line says how many; the bus never waits.
    When the daemon stops or restarts, it says so and follows it again once it is back.

    Example: eventbus tail 'user_*' --json
    """
    from .render import tail_line

    for pattern in patterns or ():
        try:
            validate_pattern(pattern)
        except InvalidEventIdError as exc:
            raise typer.BadParameter(str(exc), param_hint="PATTERNS") from None
    which = ("events matching " + " or ".join(repr(p) for p in patterns) if patterns
             else "every event")
    with reported(as_json):
        client = client_for(ctx)  # no daemon at the start: exit 3 with the hint
        said = False
        try:
            while True:
                with client:
                    try:
                        records = client.subscribe(patterns or ())
                        if not said:
                            typer.echo(f"following {which} on {client.socket_path} (Ctrl-C "
                                       "to stop)", err=True)
                            said = True
                        for record in records:
                            typer.echo(json.dumps(record) if as_json else tail_line(record))
                    except RemoteError:
                        raise
                    except EventbusError:
                        pass  # the connection was lost: as the daemon stopping
                client = reconnect(ctx, "tail")  # as tail -F
        except KeyboardInterrupt:
            return
