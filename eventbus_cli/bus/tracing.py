"""OpenTelemetry spans around deliveries (the ``otel`` extra: opentelemetry-api).

:func:`load_tracing` answers None, importing nothing, where OpenTelemetry is not installed,
and None where no tracer provider is set (spans would go nowhere): a worker then pays one
``is None`` test a delivery. Otherwise each attempt runs in a span ``deliver {event} ->
{listener}`` whose parent is the emit's trace context (its ``traceparent``); a scheduled
delivery's span links to the emit instead, since it runs long after that trace ended.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .delivery import Delivery

__all__ = ("Tracing", "load_tracing")


def load_tracing() -> Tracing | None:
    """Tracing if OpenTelemetry is installed and a tracer provider is set; else None."""
    if importlib.util.find_spec("opentelemetry") is None:
        return None
    from opentelemetry import trace

    if isinstance(trace.get_tracer_provider(),
                  trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return Tracing()


class Tracing:
    """Makes the span of each delivery attempt."""

    def __init__(self) -> None:
        from opentelemetry import propagate, trace

        self._trace = trace
        self._extract = propagate.extract
        self._tracer = trace.get_tracer("eventbus_cli")

    @contextmanager
    def attempt(self, delivery: Delivery, listener: str) -> Iterator[Any]:
        """The span of one attempt, current while the listener runs; an exception it raises
        is recorded on the span, which then has an error status."""
        trace = self._trace
        parent = self._extract(delivery.trace) if delivery.trace else None
        links = []
        if parent is not None and delivery.due_at is not None:
            links = [trace.Link(trace.get_current_span(parent).get_span_context())]
            parent = None
        attributes: dict[str, str | int] = {
            "eventbus.event": delivery.event, "eventbus.listener": listener,
            "eventbus.delivery": delivery.id, "eventbus.attempt": delivery.attempts}
        with self._tracer.start_as_current_span(
                f"deliver {delivery.event} -> {listener}", context=parent,
                kind=trace.SpanKind.CONSUMER, links=links, attributes=attributes) as span:
            try:
                yield span
            except BaseException:
                span.set_attribute("eventbus.outcome", "failed")
                raise
            span.set_attribute("eventbus.outcome", "succeeded")
