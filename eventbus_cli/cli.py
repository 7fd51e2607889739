"""The ``eventbus`` command: each command parses, calls one library function, and renders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import __version__
from .errors import EventbusError
from .scaffold import init_project

app = typer.Typer(
    help="A local event bus for Python applications.", no_args_is_help=True, add_completion=True
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"eventbus {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True,
                           help="Print the version and exit.")
    ] = False,
) -> None:
    """A local event bus for Python applications."""


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Where to write the files.")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Write eventbus.toml and listeners.d/example.py.

    Example: eventbus init myapp
    """
    try:
        written = init_project(directory, force=force)
    except EventbusError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    for path in written:
        typer.echo(f"wrote {path}")


def main() -> None:
    """Console-script entry point."""
    app()
