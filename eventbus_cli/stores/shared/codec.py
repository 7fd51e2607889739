"""How a shared store keeps a delivery and reads it back, whatever the store.

A delivery travels as its *payload*, a JSON array: ``[id, event, args, kwargs, attempts,
created, reply_to, trace, error]`` (``attempts`` made so far; ``reply_to`` the daemon that
waits for its outcome, or ""), then ``priority, order_key`` where either is not the
default. A failed one is kept as a JSON object ``{"l": listener, "at": failed at, "err":
error, "tb": traceback, "p": payload}``. Records of the live views (``tail``, ``emit
--wait``) cross daemons as ``{"h": daemon, "c": change, "e": event, "d": [[id, event,
listener, attempts, state, error, due, waited], ...]}`` (``waited``: seconds a start waited
in its lane, or null).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import msgspec

from ...bus.delivery import Delivery, DeliveryState
from ...protocol.event import NORMAL

__all__ = ("decode_failed", "decode_payload", "decode_record", "encode_failed",
           "encode_payload", "encode_record")

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def encode_payload(delivery: Delivery, reply_to: str = "") -> bytes:
    """The payload of ``delivery``, as its next reader gets it."""
    if delivery.priority == NORMAL and delivery.order_key is None:
        return _encode([delivery.id, delivery.event, delivery.args, delivery.kwargs,
                        delivery.attempts, delivery.created_at, reply_to, delivery.trace,
                        delivery.error])
    return _encode([delivery.id, delivery.event, delivery.args, delivery.kwargs,
                    delivery.attempts, delivery.created_at, reply_to, delivery.trace,
                    delivery.error, delivery.priority, delivery.order_key])


def decode_payload(data: bytes | str, listener: str) -> tuple[Delivery, str]:
    """The delivery a payload holds, and the daemon that waits for its outcome ("": none)."""
    values = _decode(data)
    delivery_id, event, args, kwargs, attempts, created, reply_to, trace, error = values[:9]
    delivery = Delivery(delivery_id, event, tuple(args), kwargs, listener, 0.0, len(data),
                        created)
    delivery.attempts = attempts
    delivery.trace = trace
    delivery.error = error
    if len(values) > 9:
        delivery.priority, delivery.order_key = values[9:11]
    return delivery, reply_to


def encode_failed(delivery: Delivery) -> bytes:
    """The failed list's record of ``delivery``."""
    return _encode({"l": delivery.listener, "at": delivery.failed_at, "err": delivery.error,
                    "tb": delivery.traceback, "p": encode_payload(delivery).decode()})


def decode_failed(data: bytes) -> Delivery:
    """The failed delivery a failed list's record holds."""
    record = _decode(data)
    delivery = decode_payload(record["p"], record["l"])[0]
    delivery.state = DeliveryState.FAILED
    delivery.failed_at = record.get("at")
    delivery.error = record.get("err") or delivery.error
    delivery.traceback = record.get("tb")
    return delivery


def encode_record(daemon: str, change: str, event: str | None,
                  deliveries: Sequence[Delivery]) -> bytes:
    """One change of the live views, for the other daemons."""
    now = time.monotonic()
    return _encode({"h": daemon, "c": change, "e": event, "d": [
        [d.id, d.event, d.listener, d.attempts, d.state.value, d.error, d.due_at,
         round(now - d.queued_at, 6) if change == "started" and d.queued_at else None]
        for d in deliveries]})


def decode_record(data: bytes) -> tuple[str, str, str | None, list[Delivery]]:
    """The daemon, change, event and deliveries of a record; each delivery's ``host`` is
    that daemon, and a start's ``queued_at`` is as long ago as it waited there."""
    record: dict[str, Any] = _decode(data)
    made = []
    now = time.monotonic()
    for delivery_id, event, listener, attempts, state, error, due, *rest in record["d"]:
        waited = rest[0] if rest else None
        delivery = Delivery(delivery_id, event, (), {}, listener,
                            now - waited if isinstance(waited, (int, float)) else 0.0)
        delivery.host = record["h"]
        delivery.attempts = attempts
        delivery.state = DeliveryState(state)
        delivery.error = error
        delivery.due_at = due
        made.append(delivery)
    return record["h"], record["c"], record["e"], made
