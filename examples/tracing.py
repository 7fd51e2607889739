"""One request's trace through the daemon, printed by OpenTelemetry's console exporter.

    .venv/bin/python examples/tracing.py

Needs the `otel` extra and the SDK (`pip install opentelemetry-sdk`). Serves the repository's
listeners.d in this process (`serve()`), so that one exporter sees both sides; a real daemon
exports its spans as you set it up (run it under `opentelemetry-instrument eventbus serve`, or
configure a provider in a `_otel.py` helper that a listener file imports). A "POST /users"
span emits user_created through AsyncClient; each delivery's span is its child, in the same
trace.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import anyio
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from eventbus_cli import AsyncClient, Config
from eventbus_cli.config import DaemonConfig
from eventbus_cli.daemon.server import Ready, serve

LISTENERS = Path(__file__).resolve().parents[1] / "listeners.d"


def _line(span: ReadableSpan) -> str:
    context = span.get_span_context()
    assert context is not None
    parent = f"{span.parent.span_id:016x}" if span.parent else "none"
    return (f"span {span.name!r}: trace {context.trace_id:032x}, id {context.span_id:016x}, "
            f"parent {parent}\n")


async def main() -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(formatter=_line)))
    trace.set_tracer_provider(provider)
    with tempfile.TemporaryDirectory(prefix="eb-trace-", dir="/tmp") as folder:
        socket_path = Path(folder) / "eventbus.sock"
        config = Config(daemon=DaemonConfig(socket=socket_path, listeners_dir=LISTENERS,
                                            log_level="warning"))
        stop = anyio.Event()
        async with anyio.create_task_group() as group:
            ready: Ready = await group.start(lambda task_status: serve(
                config, shutdown_trigger=stop.wait, task_status=task_status))
            async with AsyncClient(ready.socket) as client:
                with trace.get_tracer("example").start_as_current_span("POST /users"):
                    await client.emit("user_created", email="ada@example.com")
                await client.join(10)
            stop.set()


if __name__ == "__main__":
    anyio.run(main)
