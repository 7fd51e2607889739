"""Traces across the real socket: a span in the client is the parent of the listener's span
in the daemon (served in this process, so one in-memory exporter sees both sides)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from eventbus_cli import AsyncClient, Client, Config, DaemonEmitter
from eventbus_cli.config import DaemonConfig
from eventbus_cli.daemon.server import Ready, serve
from tests.waiting import wait_until

LISTENERS = '''
from eventbus_cli import listener

@listener("user_created")
async def welcome(email: str) -> None:
    pass

@listener("boom", retries=1, backoff=0)
async def explode() -> None:
    raise RuntimeError("on purpose")
'''

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def provider() -> None:
    given = TracerProvider()
    given.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(given)  # once per process: the API refuses a second


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    _EXPORTER.clear()
    return _EXPORTER


@pytest.mark.anyio
async def test_each_delivery_span_is_a_child_of_the_emit(
    short_dir: Path, exporter: InMemorySpanExporter,
) -> None:
    (short_dir / "listeners.d").mkdir()
    (short_dir / "listeners.d" / "traced.py").write_text(LISTENERS)
    socket_path = short_dir / "eb.sock"
    config = Config(daemon=DaemonConfig(socket=socket_path,
                                        listeners_dir=short_dir / "listeners.d"))
    tracer = trace.get_tracer("test")
    stop = anyio.Event()
    async with anyio.create_task_group() as group:
        ready: Ready = await group.start(lambda task_status: serve(
            config, shutdown_trigger=stop.wait, task_status=task_status))
        assert ready.listeners == 2
        async with AsyncClient(socket_path) as client:
            with tracer.start_as_current_span("request") as request:
                assert await client.emit("user_created", email="ada@example.com") == 1
                assert await client.emit("boom") == 1
                assert await client.emit_in(0.05, "user_created", email="later@example.com")
            with (tracer.start_as_current_span("sync request") as sync_request,
                  Client(socket_path) as sync_client):
                await anyio.to_thread.run_sync(
                    lambda: sync_client.emit("user_created", email="bob@example.com"))
            with tracer.start_as_current_span("app request") as app_request:
                async with DaemonEmitter(socket_path) as bus:
                    bus.emit("user_created", email="eve@example.com")
            assert await client.join(10)
            await wait_until(lambda: len([  # the scheduled one too
                s for s in exporter.get_finished_spans()
                if s.name == "deliver user_created -> traced:welcome"]) == 4, seconds=10)
        stop.set()
    spans = exporter.get_finished_spans()
    welcome = [s for s in spans if s.name == "deliver user_created -> traced:welcome"]
    boom = [s for s in spans if s.name == "deliver boom -> traced:explode"]
    emitted = request.get_span_context()
    now, later = [s for s in welcome if s.parent is not None and
                  s.parent.span_id == emitted.span_id], [s for s in welcome if s.links]
    assert len(now) == 1
    assert now[0].context.trace_id == emitted.trace_id
    assert now[0].kind is trace.SpanKind.CONSUMER
    assert now[0].attributes is not None
    assert (now[0].attributes["eventbus.event"], now[0].attributes["eventbus.listener"],
            now[0].attributes["eventbus.attempt"], now[0].attributes["eventbus.outcome"]) == (
        "user_created", "traced:welcome", 1, "succeeded")
    # a scheduled delivery runs after its emit's trace: it links to the emit instead
    assert len(later) == 1
    assert later[0].parent is None
    assert later[0].links[0].context.span_id == emitted.span_id
    # each attempt is a span of its own under the emit, the exception recorded on it
    assert [s.attributes["eventbus.attempt"] for s in boom if s.attributes] == [1, 2]
    assert all(s.parent is not None and s.parent.span_id == emitted.span_id for s in boom)
    assert all(s.status.status_code is StatusCode.ERROR for s in boom)
    assert all(any(e.name == "exception" for e in s.events) for s in boom)
    # the sync client and the app's DaemonEmitter carry the context too
    for outer in (sync_request, app_request):
        span_id = outer.get_span_context().span_id
        assert sum(s.parent is not None and s.parent.span_id == span_id for s in welcome) == 1
