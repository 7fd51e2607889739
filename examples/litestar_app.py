"""The seed's Litestar app, with its listeners moved out to the daemon.

    .venv/bin/python examples/litestar_app.py

`app` is a plain Litestar app: serve it as you serve any (`litestar --app
examples.litestar_app:app run`, or uvicorn) next to `eventbus serve`. Run as a script, this
file starts a daemon on the repository's listeners.d, sends the app two requests through
Litestar's TestClient, and prints what the daemon's listeners did. The handlers return at once:
`request.app.emit` only puts the event in a buffer that a background task sends on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Litestar, Request, delete, post
from litestar.params import FromPath

from eventbus_cli.litestar import EventbusPlugin


@post("/users", sync_to_thread=False)
def create_user(request: Request[Any, Any, Any], data: dict[str, str]) -> str:
    request.app.emit("user_created", email=data["email"])
    return f"created {data['email']}"


@delete("/users/{email:str}", sync_to_thread=False, status_code=200)
def delete_user(request: Request[Any, Any, Any], email: FromPath[str],
                reason: str = "none given") -> str:
    request.app.emit("user_deleted", email=email, reason=reason)
    return f"deleted {email}"


def make_app(socket: Path | str | None = None) -> Litestar:
    """The app, sending to the daemon on ``socket`` (default: the one `eventbus` would use)."""
    return Litestar(route_handlers=[create_user, delete_user],
                    plugins=[EventbusPlugin(socket)])


app = make_app()


def main() -> int:
    from litestar.testing import TestClient

    from eventbus_cli.testing import running_daemon

    listeners = Path(__file__).resolve().parents[1] / "listeners.d"
    with running_daemon(listeners) as bus:
        with TestClient(make_app(bus.socket)) as client:
            print(client.post("/users", json={"email": "ada@example.com"}).text)
            print(client.delete("/users/ada@example.com",
                                params={"reason": "moved to a cabin"}).text)
        bus.client.join(30)
        print(f"the daemon ran {bus.client.queue().succeeded} deliveries:")
        for line in bus.logs().splitlines():
            if "eventbus_listeners." in line:
                print("  " + line.split(" ", 2)[2])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
