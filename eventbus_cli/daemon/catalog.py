"""The event catalog: which events the loaded listeners take, with what arguments, as a
listing (``eventbus events``), a JSON Schema per event (``events schema``) and a dry run."""

from __future__ import annotations

from typing import Any

from ..bus.emitter import SimpleEventEmitter
from ..names import is_pattern
from ..protocol.results import CatalogListener, DryRunListener, EmitResult, EventInfo

__all__ = ("dry_run", "event_catalog", "event_schema")

_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def event_catalog(emitter: SimpleEventEmitter) -> list[EventInfo]:
    """Each event id or pattern a loaded listener takes, sorted, with its listeners and the
    parameters each accepts."""
    events: dict[str, list[CatalogListener]] = {}
    for slot in emitter.slots:
        arguments = slot.arguments
        for event_id in slot.listener.event_ids:
            events.setdefault(event_id, []).append(CatalogListener(
                listener=slot.name,
                signature=arguments.text if arguments is not None else None,
                parameters=arguments.describe() if arguments is not None else None,
                check=slot.options.check,
            ))
    return [EventInfo(event_id, is_pattern(event_id), events[event_id])
            for event_id in sorted(events)]


def event_schema(emitter: SimpleEventEmitter, event_id: str) -> dict[str, Any] | None:
    """A JSON Schema of the ``{"args", "kwargs"}`` every listener of ``event_id`` can take
    together; None if no listener takes the event."""
    slots = emitter.slots_for(event_id)
    if not slots:
        return None
    parts = []
    for slot in slots:
        if slot.arguments is None or slot.options.check == "off":
            continue  # takes what it is given, as far as anyone can tell
        parts.append({"title": f"{slot.name}{slot.arguments.text}", **slot.arguments.schema()})
    return {"$schema": _SCHEMA_DIALECT, "title": f"the arguments of event {event_id!r}",
            "description": "what every listener of the event can take: "
                           + ", ".join(slot.name for slot in slots),
            "allOf": parts}


def dry_run(emitter: SimpleEventEmitter, event_id: str, args: list[Any],
            kwargs: dict[str, Any]) -> EmitResult:
    """Which listeners an emit would reach and whether each takes its arguments; nothing is
    queued."""
    found = []
    for slot in emitter.slots_for(event_id):
        problem = (slot.arguments.problem(args, kwargs)
                   if slot.arguments is not None and not slot.arguments.trivial else None)
        text = slot.arguments.text if slot.arguments is not None else None
        found.append(DryRunListener(
            listener=slot.name, signature=text, takes=problem is None, check=slot.options.check,
            problem=None if problem is None else f"{slot.name}{text or ''}{problem}"))
    return EmitResult(event_id, 0, listeners=found)
