"""Run the repository's listeners.d in-process and emit the seed's events.

    .venv/bin/python examples/quickstart.py

Loads every listener file of ../listeners.d, emits user_created, password_changed and
user_deleted, waits for every delivery, and prints the counters.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import anyio

from eventbus_cli import SimpleEventEmitter, load_listeners

LISTENERS_DIR = Path(__file__).resolve().parent.parent / "listeners.d"


async def main() -> None:
    listeners = load_listeners(LISTENERS_DIR)
    for item in listeners:
        print(f"loaded {item.module}.{item.name} on {', '.join(sorted(item.event_ids))}")
    async with SimpleEventEmitter(listeners) as emitter:
        emitter.emit("user_created", email="ada@example.com")
        emitter.emit("password_changed", email="ada@example.com", message="New password set.")
        emitter.emit("user_deleted", email="ada@example.com", reason="moved to a cabin")
        emitter.emit("user_renamed", email="ada@example.com")  # no listener: counted as unrouted
    print(json.dumps(emitter.stats().to_dict(), indent=2))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    anyio.run(main)
