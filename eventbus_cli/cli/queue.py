"""``eventbus queue``: the counters, live or once, and the deliveries: list, show, retry,
purge."""

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import EventbusError, RemoteError
from ..plural import counted
from .app import (
    JsonOption,
    State,
    client_for,
    queue_app,
    reconnect,
    refuse,
    reported,
    show,
    wire,
)

if TYPE_CHECKING:
    from ..protocol.results import QueueCounts


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
        with reported(as_json):
            fetch = _Following(ctx)
            try:
                if as_json or not sys.stdout.isatty():
                    _watch_lines(fetch, interval or 1.0, as_json)
                else:
                    from .render import watch_queue

                    watch_queue(fetch, interval or 1.0)
            finally:
                fetch.client.close()
        return
    with reported(as_json), client_for(ctx) as client:
        counters = client.queue()
    show(counters, as_json, "print_queue")


class _Following:
    """The queue's counters, from a client that connects again when the daemon comes back
    after a stop or a restart (``queue --watch`` goes on, as ``tail`` does)."""

    def __init__(self, ctx: typer.Context) -> None:
        self.ctx = ctx
        self.client = client_for(ctx)  # no daemon at the start: exit 3 with the hint

    def __call__(self) -> "QueueCounts":
        while True:
            try:
                return self.client.queue()
            except RemoteError:
                raise
            except EventbusError:
                self.client.close()
                self.client = reconnect(self.ctx, "queue --watch")


def _watch_lines(fetch: Callable[[], "QueueCounts"], interval: float, as_json: bool) -> None:
    """One line of counters per ``interval`` until Ctrl-C: for pipes, logs and scripts."""
    import time

    try:
        while True:
            queue = wire(fetch())
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


ListenerFilter = Annotated[str | None, typer.Option(
    "--listener", help="Only deliveries of this listener (as `listeners list` names it).")]
EventFilter = Annotated[str | None, typer.Option(
    "--event", help="Only deliveries of events matching this id or glob ('user_*').")]
ErrorFilter = Annotated[str | None, typer.Option(
    "--grep", help="Only deliveries whose error holds this text (any case).")]


@queue_app.command("list")
def queue_list(
    ctx: typer.Context,
    state: Annotated[State | None, typer.Option("--state", help="Only deliveries in this state.")
                     ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Show at most N.")] = None,
    listener: ListenerFilter = None,
    event: EventFilter = None,
    grep: ErrorFilter = None,
    as_json: JsonOption = False,
) -> None:
    """List deliveries, newest first: pending, running, retrying and failed (or one state).

    Example: eventbus queue list --state failed --limit 20 --grep Timeout
    """
    with reported(as_json), client_for(ctx) as client:
        deliveries = client.deliveries(state.value if state else None, limit,
                                       listener=listener, event=event, text=grep)
        held = _held(client.queue(), state.value if state else None)
    show(deliveries, as_json, "print_deliveries", state=state.value if state else None)
    if len(deliveries) < held and not (listener or event or grep):
        why = ("--limit" if limit is not None and len(deliveries) == limit
               else "a reply holds about 16 MiB; --state or --limit choose what to see")
        kind = f"{state.value} " if state else ""
        typer.echo(f"the newest {len(deliveries)} of {held} {kind}deliveries are shown ({why})",
                   err=True)


def _held(queue: "QueueCounts", state: str | None) -> int:
    """How many deliveries of ``state`` (any, for None) the counters say are held."""
    counts = {"pending": queue.pending, "running": queue.running, "retrying": queue.retrying,
              "scheduled": queue.scheduled, "failed": queue.failed_list}
    return sum(counts.values()) if state is None else counts[state]


def _delivery_id(text: str) -> int:
    if text.isascii() and text.isdigit() and int(text) >= 1:
        return int(text)
    raise typer.BadParameter(f"{text!r} is not a delivery id: ids are whole numbers from 1 "
                             "(`eventbus queue list` shows them)")


@queue_app.command("show")
def queue_show(
    ctx: typer.Context,
    delivery: Annotated[int, typer.Argument(help="The delivery's id.", parser=_delivery_id,
                                            metavar="ID")],
    as_json: JsonOption = False,
) -> None:
    """Show one delivery with the full traceback of its last failure.

    Example: eventbus queue show 42
    """
    with reported(as_json), client_for(ctx) as client:
        found = client.delivery(delivery)
    show(found, as_json, "print_delivery")


@queue_app.command("requeue", help="The same as `queue retry`, as RQ users type it.\n\n"
                   "Example: eventbus queue requeue 41 42")
@queue_app.command("retry")
def queue_retry(
    ctx: typer.Context,
    deliveries: Annotated[list[int] | None, typer.Argument(
        help="Ids of failed deliveries.", parser=_delivery_id, metavar="IDS...",
        show_default=False)] = None,
    every: Annotated[bool, typer.Option(
        "--all", help="Retry every failed delivery (that --listener, --event, --grep match)."
    )] = False,
    listener: ListenerFilter = None,
    event: EventFilter = None,
    grep: ErrorFilter = None,
) -> None:
    """Queue failed deliveries again, attempts counted afresh.

    Example: eventbus queue retry 41 42   (or: eventbus queue retry --all --grep Timeout)
    """
    if every and deliveries:
        refuse("give delivery ids or --all, not both")
    if not every and not deliveries:
        refuse("say which failed deliveries to retry: their ids (`eventbus "
                               "queue list --state failed` shows them), or --all")
    if deliveries and (listener or event or grep):
        refuse("--listener, --event and --grep choose among all failed deliveries: "
               "use them with --all, not with ids")
    with reported(), client_for(ctx) as client:
        retried = client.retry(None if every else deliveries, listener=listener, event=event,
                               text=grep)
    typer.echo(f"{counted(len(retried), 'delivery')} queued again")


@queue_app.command("purge")
def queue_purge(
    ctx: typer.Context,
    failed: Annotated[bool, typer.Option("--failed", help="Drop the failed list.")] = False,
    pending: Annotated[bool, typer.Option(
        "--pending", help="Drop the deliveries waiting to run (pending and retrying).")] = False,
    scheduled: Annotated[bool, typer.Option(
        "--scheduled", help="Drop the deliveries emitted for later (--delay, --at).")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask first.")] = False,
) -> None:
    """Drop failed deliveries, or those waiting to run; running calls finish.

    Example: eventbus queue purge --failed --yes
    """
    chosen = [name for name, given in (("failed", failed), ("pending", pending),
                                       ("scheduled", scheduled)) if given]
    if len(chosen) != 1:
        refuse("say what to purge: --failed (the failed list), --pending (what waits to run) "
               "or --scheduled (what was emitted for later)" + (", one of them" if chosen
                                                                 else ""))
    state = chosen[0]
    if not yes:
        if not sys.stdin.isatty():
            refuse(f"purging asks first, and stdin is not a terminal to ask "
                                   f"on: add --yes to drop every {state} delivery without "
                                   "asking")
        typer.confirm(f"Drop every {state} delivery? They cannot be brought back", abort=True)
    with reported(), client_for(ctx) as client:
        purged = client.purge(state)
    typer.echo(f"{counted(purged, f'{state} delivery', f'{state} deliveries')} purged")
