"""``eventbus relay``: forward an application's transactional outbox to the daemon."""

import logging
from typing import Annotated

import typer

from .app import app, config_for, reported


@app.command()
def relay(
    ctx: typer.Context,
    db: Annotated[str, typer.Option(
        "--db", help="The application's database, as a SQLAlchemy URL "
        "(postgresql+psycopg://..., sqlite:///app.db).")],
    table: Annotated[str, typer.Option(
        "--table", help="The outbox table's name.")] = "eventbus_outbox",
    create_table: Annotated[bool, typer.Option(
        "--create-table/--no-create-table",
        help="Create the table where it is missing (on PostgreSQL with its NOTIFY trigger).")
    ] = True,
    batch: Annotated[int, typer.Option(
        "--batch", min=1, help="Rows a round takes and sends at most.")] = 1000,
    once: Annotated[bool, typer.Option(
        "--once", help="Forward the rows waiting now, then exit.")] = False,
) -> None:
    """Forward the rows of an application's outbox table to the daemon, until Ctrl-C.

    Each row goes with a dedupe key made from it and is deleted once the daemon has it, so
    a relay killed at any point sends nothing twice. Two relays on one table share the work.

    Example: eventbus relay --db postgresql+psycopg://app@localhost/app
    """
    from ..client.relay import Relay, relay_until_stopped

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(message)s")
    with reported():
        settings = config_for(ctx)
        forwarder = Relay(db, settings.daemon.socket_path, table=table, batch=batch,
                          create_table=create_table)
        sent = relay_until_stopped(forwarder, once=once)
    typer.echo(f"{sent} rows forwarded")
