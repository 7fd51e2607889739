"""The Redis store: N daemons share one bus on Redis Streams (see ``broker.py``)."""

from __future__ import annotations

from .broker import RedisBroker, default_name

__all__ = ("RedisBroker", "default_name")
