"""The daemon's log: every record (the daemon's and the listeners') to stderr, as text lines
or as one JSON object a line (``log_format = "json"``) that structlog and log shippers take as
they are."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

__all__ = ("JsonFormatter", "configure_logging")

_FIELDS = ("event", "listener", "delivery", "attempt")
"""Facts a record may carry (``extra={...}``), written as fields of their own in JSON."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``timestamp`` (ISO 8601, UTC), ``level``, ``logger``,
    ``message``; ``event``, ``listener``, ``delivery`` and ``attempt`` where the record has
    them, ``trace_id`` and ``span_id`` inside an OpenTelemetry span, and ``exception`` with
    the traceback of a record logged with one."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        document: dict[str, Any] = {
            "timestamp": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in _FIELDS:
            value = record.__dict__.get(field)
            if value is not None:
                document[field] = value
        document.update(_trace_ids())
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def _trace_ids() -> dict[str, str]:
    """The current span's ids, if OpenTelemetry is loaded and a span is recording."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return {}
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def configure_logging(level: str, log_format: str = "text") -> None:
    """Send every log record to stderr at ``level``, as text with a timestamp or as JSON."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s",
            "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
