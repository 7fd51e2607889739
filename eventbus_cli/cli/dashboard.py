"""``eventbus dashboard``: the web dashboard, on its own."""

import contextlib
from typing import Annotated

import typer

from .app import app, config_for, refuse, reported


@app.command()
def dashboard(
    ctx: typer.Context,
    listen: Annotated[str, typer.Option(
        "--listen", help="HOST:PORT to serve on; loopback unless --allow-remote.")
    ] = "127.0.0.1:8088",
    allow_remote: Annotated[bool, typer.Option(
        "--allow-remote", help="Serve on an address other machines reach (every page then "
        "needs the token).")] = False,
    read_only: Annotated[bool, typer.Option(
        "--read-only", help="Show everything, change nothing: no retry, purge, run or emit.")
    ] = False,
    token: Annotated[str | None, typer.Option(
        "--token", envvar="EVENTBUS_DASHBOARD_TOKEN", show_envvar=True,
        help="The token actions need (default: a new one, printed).")] = None,
) -> None:
    """Serve the web dashboard: live counters, the failed list with retry and purge,
    deliveries, schedules, listeners, the event catalog and a live tail.

    Needs the dashboard extra: pip install 'eventbus-cli[dashboard]'.

    Example: eventbus dashboard --listen 127.0.0.1:8088
    """
    try:
        from ..dashboard.server import parse_listen, serve_dashboard, standalone_board
    except ImportError as exc:
        refuse(f"the dashboard needs its extra ({exc.name} is missing): "
               "pip install 'eventbus-cli[dashboard]'")
    with reported():
        where = parse_listen(listen, allow_remote=allow_remote)
        settings = config_for(ctx).daemon
        board = standalone_board(settings.socket_path, settings.allow_uids, token=token,
                                 read_only=read_only)

        def ready(url: str) -> None:
            typer.echo(f"eventbus dashboard on {url} for the daemon at {settings.socket_path}")
            if read_only:
                typer.echo("read-only: nothing can be changed from it")
            elif token is None:
                typer.echo(f"to retry, purge, run or emit, open {url}login?token={board.token}")
            else:
                typer.echo("actions need the token given (--token / EVENTBUS_DASHBOARD_TOKEN)")
            typer.echo("Ctrl-C to stop", err=True)

        with contextlib.suppress(KeyboardInterrupt):
            serve_dashboard(board, where, ready=ready)

