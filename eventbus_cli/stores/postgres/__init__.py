"""The PostgreSQL store: N daemons share one bus in a database (``link.py``: its statements,
``schema.py``: its tables, ``views.py``: LISTEN/NOTIFY; the policy is the shared broker's,
``stores/shared``)."""

from __future__ import annotations

from .link import open_link

__all__ = ("open_link",)
