"""The Redis store: N daemons share one bus on Redis Streams (``link.py``: its commands;
the policy is the shared broker's, ``stores/shared``)."""

from __future__ import annotations

from .link import open_link

__all__ = ("open_link",)
