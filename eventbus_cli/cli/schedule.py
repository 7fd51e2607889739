"""``eventbus schedule``: the daemon's schedules, and firing one by hand."""

from typing import Annotated

import typer

from .app import JsonOption, client_for, reported, schedule_app, show


@schedule_app.command("list")
def schedule_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show each schedule: name, spec, time zone, event, next fire, last fire and outcome.

    Example: eventbus schedule list --json
    """
    with reported(as_json), client_for(ctx) as client:
        schedules = client.schedules()
    show(schedules, as_json, "print_schedules")


@schedule_app.command("run")
def schedule_run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The schedule's name (see `schedule list`).")],
    as_json: JsonOption = False,
) -> None:
    """Fire a schedule now, as if it were due; its next fire stays as it was.

    Example: eventbus schedule run daily_report
    """
    with reported(as_json), client_for(ctx) as client:
        fired = client.fire(name)
    if as_json:
        show(fired, True, "")
        return
    typer.echo(f"{fired.name}: {fired.event} {fired.outcome}")
