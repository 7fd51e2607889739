"""A Litestar app's emit: EventbusPlugin (to a real daemon) against Litestar's own emitter.

Run: .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/plugin.py [EVENTS]

1. The cost of `request.app.emit(...)` inside a request handler: a route emits EVENTS / 10
   events per request (one positional, one keyword argument) and times its own emit calls;
   ten requests through Litestar's TestClient. Litestar's SimpleEventEmitter, with one no-op
   listener, is the peer. Target: ours at most 2x theirs.
2. Bulk: EVENTS events from the app to one no-op listener, timed until every one has run
   (ours: in the daemon, as its `join` says; theirs: in process, as the app's shutdown says).
   Target: ours at least 2x Litestar's in-process events/s.

Each figure is the median of three runs, taken in turns (theirs, ours, ...).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, get
from litestar.events import listener as litestar_listener
from litestar.testing import TestClient

from eventbus_cli.litestar import EventbusPlugin
from eventbus_cli.testing import RunningDaemon, running_daemon

NOOP = '''
from eventbus_cli import listener

@listener("user_created")
async def noop(*args, **kwargs) -> None:
    pass
'''


def _app(per_request: int, spent: list[float], **options: Any) -> Litestar:
    @get("/", sync_to_thread=False)
    def handler(request: Request[Any, Any, Any]) -> None:
        emit = request.app.emit
        start = time.perf_counter()
        for number in range(per_request):
            emit("user_created", number, email="x@example.com")
        spent.append(time.perf_counter() - start)

    return Litestar(route_handlers=[handler], logging_config=None, **options)


def _litestar_app(per_request: int, spent: list[float]) -> Litestar:
    handled: list[int] = []

    @litestar_listener("user_created")
    async def noop(*args: Any, **kwargs: Any) -> None:
        handled.append(1)

    return _app(per_request, spent, listeners=[noop])


def run(events: int, requests: int, bus: RunningDaemon | None) -> tuple[float, float]:
    """(seconds in emit per event, seconds until every event had run); ``bus`` None: theirs."""
    spent: list[float] = []
    per_request = events // requests
    if bus is None:
        app = _litestar_app(per_request, spent)
    else:
        app = _app(per_request, spent, plugins=[EventbusPlugin(
            bus.socket, buffer_size=events + 1, buffer_bytes=1 << 30, flush_timeout=120)])
    start = time.perf_counter()
    with TestClient(app) as client:
        for _ in range(requests):
            client.get("/")
    if bus is not None:
        bus.client.join(120)
    whole = time.perf_counter() - start
    return sum(spent) / (per_request * requests), whole


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    folder = Path(tempfile.mkdtemp(prefix="eb-bench-"))
    (folder / "noop.py").write_text(NOOP)
    emit: dict[str, list[float]] = {"litestar": [], "eventbus": []}
    bulk: dict[str, list[float]] = {"litestar": [], "eventbus": []}
    with running_daemon(folder) as bus:
        for _ in range(3):
            for name, daemon in (("litestar", None), ("eventbus", bus)):
                per_event, whole = run(events, 10, daemon)
                emit[name].append(per_event)
                bulk[name].append(events / whole)
    theirs, ours = (statistics.median(emit[name]) * 1e6 for name in ("litestar", "eventbus"))
    print(f"app.emit in a handler: Litestar {theirs:.2f} us, eventbus plugin {ours:.2f} us "
          f"= {ours / theirs:.2f}x theirs (target <= 2x)")
    theirs, ours = (statistics.median(bulk[name]) for name in ("litestar", "eventbus"))
    print(f"bulk app -> listener: Litestar in-process {theirs:,.0f} events/s, eventbus "
          f"app -> daemon {ours:,.0f} events/s = {ours / theirs:.2f}x (target >= 2x)")


if __name__ == "__main__":
    main()
