"""The protocol codec: bytes in, bytes out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from eventbus_cli.errors import ProtocolError
from eventbus_cli.protocol.codec import (
    LineSplitter,
    decode_reply,
    encode_error,
    encode_request,
    encode_result,
)
from eventbus_cli.protocol.event import EventMessage, decode_event
from eventbus_cli.protocol.ops import OPS, decode_request
from eventbus_cli.protocol.requests import EmitManyRequest, EmitRequest, ListRequest


def test_emit_request_with_defaults() -> None:
    line = b'{"id": 7, "op": "emit", "event": "user_created"}'
    assert decode_request(line) == EmitRequest(
        id=7, op="emit", event=EventMessage("user_created", [], {}), size=len(line))


def test_emit_many_and_list_requests() -> None:
    request = decode_request(
        b'{"id": "x", "op": "emit_many", "events": [{"event": "a", "args": [1]}, '
        b'{"event": "b", "kwargs": {"k": null}}]}'
    )
    assert isinstance(request, EmitManyRequest)
    assert request.events == (EventMessage("a", [1], {}), EventMessage("b", [], {"k": None}))
    line = '{"id": 1, "op": "list", "state": "failed", "limit": 3}'
    assert decode_request(line) == ListRequest(id=1, op="list", state="failed", limit=3)


@pytest.mark.parametrize(
    ("line", "code", "request_id", "words"),
    [
        (b"{", "bad_json", None, "not valid JSON"),
        (b'"text"', "bad_json", None, "not a str"),
        (b'{"id": 1.5, "op": "hello"}', "bad_request", None, '"id"'),
        (b'{"id": 3, "op": "nope"}', "unknown_op", 3, "the ops are hello, emit"),
        (b'{"id": 3, "op": "hello", "x": 1}', "bad_request", 3, "takes no field 'x'"),
        (b'{"id": 3, "op": "emit", "event": ""}', "invalid_event", 3, "invalid event id"),
        (b'{"id": 3, "op": "emit", "event": "a", "args": "b"}', "bad_request", 3, '"args"'),
        (b'{"id": 3, "op": "emit_many", "events": [{"event": "a", "x": 1}]}', "bad_request", 3,
         "events[0]: unknown field 'x'"),
        (b'{"id": 3, "op": "list", "limit": true}', "bad_request", 3, '"limit"'),
        (b'{"id": 3, "op": "emit", "event": "a", "at": "0001-01-01T00:00"}', "bad_request", 3,
         "within a year from now"),  # the calendar's edge, where no time zone reaches
        (b'{"id": 3, "op": "emit", "event": "a", "at": "9999-12-31T23:59:59-05:00"}',
         "bad_request", 3, '"at" must be'),
        (b'{"id": "", "op": []}', "unknown_op", "", "unknown op []"),  # found by test_fuzz
        (b"[" * 100_000, "bad_json", None, "nest more than 64 deep"),
        (b'{"id": 1, "op": "emit", "event": "x", "kwargs": {"v": %s}}' % (b"[" * 65 + b"]" * 65),
         "bad_request", 1, "values nest more than 64 deep"),
        (b'{"id": 3, "op": "show"}', "bad_request", 3, '"delivery" must be a delivery id'),
        (b'{"id": 3, "op": "show", "delivery": true}', "bad_request", 3, '"delivery"'),
        (b'{"id": 3, "op": "retry"}', "bad_request", 3, '"deliveries" (a list of ids) or "all"'),
        (b'{"id": 3, "op": "retry", "all": true, "deliveries": [1]}', "bad_request", 3,
         "not both"),
        (b'{"id": 3, "op": "retry", "deliveries": [0]}', "bad_request", 3,
         "delivery ids (whole numbers >= 1)"),
        (b'{"id": 3, "op": "retry", "all": 1}', "bad_request", 3, '"all" must be true or false'),
        (b'{"id": 3, "op": "purge", "state": "running"}', "bad_request", 3,
         '"state" must be one of pending, scheduled, failed'),
    ],
)
def test_bad_requests_name_the_problem(
    line: bytes, code: str, request_id: object, words: str
) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_request(line)
    assert caught.value.code == code
    assert caught.value.request_id == request_id
    assert words in caught.value.problem


def test_values_nested_64_deep_pass() -> None:
    nested = b"[" * 64 + b"]" * 64
    request = decode_request(b'{"id": 1, "op": "emit", "event": "x", "kwargs": {"v": %s}}' % nested)
    assert isinstance(request, EmitRequest)
    assert request.event.kwargs["v"] == json.loads(nested)


def test_line_splitter_handles_partial_lines() -> None:
    splitter = LineSplitter(10)
    assert splitter.feed(b"ab") == []
    assert splitter.feed(b"c\nde\nf") == [b"abc", b"de"]
    assert splitter.pending == b"f"
    assert not splitter.too_large


def test_line_splitter_stops_at_a_line_over_the_limit() -> None:
    splitter = LineSplitter(4)
    assert splitter.feed(b"ok\ntoolong\nlater\n") == [b"ok"]
    assert splitter.too_large
    partial = LineSplitter(4)
    assert partial.feed(b"12345") == []
    assert partial.too_large
    assert "max_message_bytes (4 bytes)" in str(partial.too_large_error())


def test_replies_round_trip() -> None:
    ok = encode_result(4, {"deliveries": 2})
    assert ok.endswith(b"\n")
    assert decode_reply(ok).result == {"deliveries": 2}
    error = decode_reply(encode_error(5, "queue_full", "full", accepted=3))
    assert (error.id, error.ok, error.code, error.message, error.details) == (
        5, False, "queue_full", "full", {"accepted": 3}
    )
    assert json.loads(encode_request(1, "emit", event="a")) == {"id": 1, "op": "emit",
                                                                "event": "a"}
    with pytest.raises(ProtocolError):
        decode_reply(b'{"id": 1}')


def test_values_that_json_cannot_hold_are_sent_as_their_repr() -> None:
    assert json.loads(encode_result(1, {"x": {1, 2}}))["result"] == {"x": "{1, 2}"}


def test_decode_event_checks_a_file_line() -> None:
    assert decode_event('{"event": "a", "args": [1]}') == EventMessage("a", [1], {})
    with pytest.raises(ProtocolError, match="unknown field 'extra'"):
        decode_event('{"event": "a", "extra": 1}')


def test_every_op_has_exactly_one_handler() -> None:
    from eventbus_cli.daemon import handlers

    assert set(handlers._HANDLERS) == set(OPS)


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_op_refuses_a_field_it_does_not_take(op: str) -> None:
    with pytest.raises(ProtocolError, match="takes no field 'nonsense'") as caught:
        decode_request(json.dumps({"id": 1, "op": op, "nonsense": 1}))
    assert caught.value.code == "bad_request"


@pytest.mark.parametrize("value", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_nan_and_infinities_are_refused(value: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_request(b'{"id": 1, "op": "emit", "event": "x", "args": [%s]}' % value)
    assert caught.value.code == "bad_json"


def test_big_integers_and_lone_surrogates_arrive_exactly() -> None:
    request = decode_request(b'{"id": 1, "op": "emit", "event": "x", '
                             b'"args": [123456789012345678901234567890, "a\\ud800b", 1.5]}')
    assert isinstance(request, EmitRequest)
    assert request.event.args == [123456789012345678901234567890, "a\ud800b", 1.5]


@pytest.mark.parametrize("patterns", [["x"] * 65, ["a" * 201], ["no spaces"], [""]])
def test_a_subscription_takes_a_bounded_number_of_valid_patterns(patterns: list[str]) -> None:
    with pytest.raises(ProtocolError, match="at most 64 event-id globs") as caught:
        decode_request(json.dumps({"id": 1, "op": "subscribe", "patterns": patterns}))
    assert caught.value.code == "bad_request"
    assert decode_request(json.dumps({"id": 1, "op": "subscribe", "patterns": ["user_*"] * 64}))


def test_each_handler_takes_the_request_and_returns_the_result_its_op_names() -> None:
    """The op table, the handlers and the clients speak of one request and one result type
    per op (mypy then checks that each handler keeps to them)."""
    from typing import get_type_hints

    from eventbus_cli.daemon import handlers
    from eventbus_cli.daemon.monitor import Subscription
    from eventbus_cli.protocol import results

    names = {**vars(results), "Any": Any}
    for op, spec in OPS.items():
        hints = get_type_hints(handlers._HANDLERS[op], vars(handlers))
        assert hints["request"] is spec.request, op
        returned = hints["return"]
        if op == "subscribe":  # the connection streams it, after a `Subscribed` reply
            assert returned is Subscription
            continue
        assert returned == eval(spec.returns, names), op
