"""``eventbus events``: the catalog of events the loaded listeners take, and their schema."""

from typing import Annotated

import typer

from .app import JsonOption, client_for, complete_events, events_app, reported, show


@events_app.callback(invoke_without_command=True)
def events(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List every event id the loaded listeners take, with each listener's signature.

    Patterns (user_*) are shown as patterns. `eventbus events schema EVENT` prints what an
    event's listeners accept together as JSON Schema, for producers in other languages.

    Example: eventbus events --json
    """
    if ctx.invoked_subcommand is not None:
        return
    with reported(as_json), client_for(ctx) as client:
        catalog = client.events()
    show(catalog, as_json, "print_events")


@events_app.command("schema")
def events_schema(
    ctx: typer.Context,
    event: Annotated[str, typer.Argument(help="The event id.", autocompletion=complete_events)],
) -> None:
    """Print a JSON Schema of the {"args", "kwargs"} every listener of EVENT can take.

    Example: eventbus events schema user_created > user_created.schema.json
    """
    with reported(True), client_for(ctx) as client:
        schema = client.schema(event)
    show(schema, True, "")
