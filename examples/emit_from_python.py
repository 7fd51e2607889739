"""Emit from a Python program through the client library, sync and async.

    .venv/bin/python examples/emit_from_python.py

Serves the welcome-mail example's listener, then emits to it with `Client` (the standard
socket module, as a web request handler would) and with `AsyncClient` (anyio), and reads the
daemon's counters back.
"""

from __future__ import annotations

from pathlib import Path

import anyio

from eventbus_cli import AsyncClient, Client


def emit_from_python(env: dict[str, str]) -> None:
    socket_path = env["EVENTBUS_SOCKET"]
    with Client(socket_path) as client:
        queued = client.emit("user_created", email="ada@example.com")
        print(f"Client.emit queued {queued} delivery")
        result = client.wait(10, "user_created", email="bob@example.com")
        print(f"waited: {result.results}")

    async def emit_async() -> None:
        async with AsyncClient(socket_path) as client:
            queued = await client.emit("user_created", email="eve@example.com")
            print(f"AsyncClient.emit queued {queued} delivery")
            queue = await client.queue()
            print(f"the daemon has run {queue.succeeded} deliveries so far")

    anyio.run(emit_async)


if __name__ == "__main__":
    from _demo import demo

    here = Path(__file__).parent
    raise SystemExit(demo(str(here / "welcome_mail.py"), [], then=emit_from_python))
