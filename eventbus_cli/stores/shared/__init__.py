"""What every store that N daemons share has in common: the broker that holds the policy
(``broker.py``), the link a store provides (``link.py``), what the hot path recorded and
has not sent (``outbound.py``), and how a delivery is kept (``codec.py``)."""

from __future__ import annotations

from .broker import SharedBroker, default_name

__all__ = ("SharedBroker", "default_name")
