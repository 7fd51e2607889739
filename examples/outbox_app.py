"""A Litestar app whose events commit with its data: the transactional outbox.

    .venv/bin/pip install -e '.[outbox,litestar]' && .venv/bin/python examples/outbox_app.py

`POST /users` inserts the user and emits `user_created` in one database transaction: both
are stored, or neither. A second sign-up with the same address fails on the table's unique
constraint, and its event rolls back with it: the welcome mail goes out once. The plugin's
relay forwards committed events to the daemon. Run as a script, this file starts a daemon on
the repository's listeners.d, a SQLite database in a temporary folder, sends the app three
requests through Litestar's TestClient and prints what the daemon's listeners did.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from litestar import Litestar, post
from litestar.exceptions import HTTPException
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from eventbus_cli import Outbox, Relay
from eventbus_cli.litestar import EventbusPlugin

outbox = Outbox()


def make_app(engine: Engine, socket: Path | str | None = None) -> Litestar:
    """The app on ``engine``, sending to the daemon on ``socket`` (default: the one
    `eventbus` would use)."""

    @post("/users", sync_to_thread=True)
    def create_user(data: dict[str, str]) -> str:
        try:
            with Session(engine) as session, session.begin():
                session.execute(text("INSERT INTO users (email) VALUES (:email)"), data)
                outbox.emit(session, "user_created", email=data["email"])
        except IntegrityError:
            raise HTTPException(status_code=409, detail=f"{data['email']} exists") from None
        return f"created {data['email']}"

    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS users (email TEXT PRIMARY KEY)"))
    relay = Relay(engine, socket, outbox=outbox)
    return Litestar(route_handlers=[create_user], plugins=[EventbusPlugin(socket, relay=relay)])


def main() -> int:
    from litestar.testing import TestClient

    from eventbus_cli.testing import running_daemon

    listeners = Path(__file__).resolve().parents[1] / "listeners.d"
    with tempfile.TemporaryDirectory() as folder, running_daemon(listeners) as bus:
        engine = create_engine(f"sqlite:///{folder}/app.db")
        statuses: list[Any] = []
        with TestClient(make_app(engine, bus.socket)) as client:
            for email in ("ada@example.com", "ada@example.com", "bob@example.com"):
                response = client.post("/users", json={"email": email})
                statuses.append(response.status_code)
                print(f"POST /users {email}: {response.status_code} {response.text}")
            deadline = time.monotonic() + 10  # the relay deletes a row once the daemon has it
            while _waiting(engine) and time.monotonic() < deadline:
                time.sleep(0.02)
            bus.client.join(30)
        engine.dispose()
        print(f"the daemon ran {bus.client.queue().succeeded} deliveries:")
        for line in bus.logs().splitlines():
            if "eventbus_listeners." in line:
                print("  " + line.split(" ", 2)[2])
    return 0 if statuses == [201, 409, 201] else 1


def _waiting(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM eventbus_outbox")).scalar_one())


if __name__ == "__main__":
    raise SystemExit(main())
