"""Fuzz the wire protocol: thousands of malformed frames against the real daemon."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventbus_cli.errors import ErrorCode
from eventbus_cli.protocol.ops import OPS
from tests.harness import running

CODES = {value for name, value in vars(ErrorCode).items() if name.isupper()}
FIELDS = ["id", "op", "event", "args", "kwargs", "events", "state", "limit", "delivery",
          "deliveries", "all", "extra"]

# Text includes lone surrogates ("\ud800"): valid JSON, but not encodable as UTF-8.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=30) | st.sampled_from(["\ud800", "a\udfffb", "\x00", "\u2028"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)
# Requests that look nearly right: known fields and ops, with values of any type (but
# `stop`, which would end the daemon under test; tests/daemon covers it).
requests = st.dictionaries(
    st.sampled_from(FIELDS),
    st.one_of(json_values, st.sampled_from(sorted(set(OPS) - {"stop"})),
              st.sampled_from(["pending", "failed"])),
    max_size=6,
).map(json.dumps)
frames = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    json_values.map(json.dumps).map(str.encode),
    requests.map(str.encode),
    st.tuples(st.sampled_from(["ping", "fail"]), json_values).map(  # events that run
        lambda emit: json.dumps({"id": 1, "op": "emit", "event": emit[0],
                                 "kwargs": {"n": emit[1]}}).encode()),
    st.tuples(requests, st.integers(min_value=0, max_value=50)).map(
        lambda cut: cut[0][: cut[1]].encode()),  # cut short
).map(lambda frame: frame.replace(b"\n", b" "))

LISTENER = '''
import json, os
from eventbus_cli import listener

@listener("ping")
def ping(n):
    if n == "checked":
        with open(os.environ["EVENTBUS_TEST_OUT"], "a") as out:
            out.write(json.dumps({"n": n}) + "\\n")

@listener("fail", retries=1, backoff=0)
def fail(n):
    raise ValueError(n)  # an error text made of whatever the client sent
'''


def _exchange(path: Path, batch: list[bytes]) -> list[dict[str, Any]]:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(str(path))
        sock.sendall(b"".join(frame + b"\n" for frame in batch))
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(1 << 16):
            received += chunk
    return [json.loads(line) for line in received.splitlines()]


def test_malformed_frames_get_errors_and_the_daemon_stays_up(short_dir: Path) -> None:
    # In journal mode, so that what clients send is written to SQLite too.
    with running(short_dir, listeners=LISTENER, config="[journal]\n") as daemon:

        @settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
        @given(st.lists(frames, min_size=1, max_size=4))
        def exchange(batch: list[bytes]) -> None:
            replies = _exchange(daemon.socket, batch)
            sent = [frame for frame in batch if frame.strip()]
            subscribed = [n for n, reply in enumerate(replies)
                          if reply.get("result") == {"subscribed": True}]
            # A subscription has the connection to itself: what follows it gets no reply.
            expected = subscribed[0] + 1 if subscribed else len(sent)
            assert len(replies) == expected, (sent, replies)
            for reply in replies:
                assert isinstance(reply["ok"], bool)
                if not reply["ok"]:
                    assert reply["error"]["code"] in CODES
                    assert reply["error"]["code"] != ErrorCode.INTERNAL, reply
                    assert reply["error"]["message"]

        exchange()
        assert daemon.alive
        assert daemon.cli("emit", "ping", "--kw", "n=checked").returncode == 0
        assert daemon.wait_for_records(1) == [{"n": "checked"}]
        assert daemon.cli("queue", "list", "--state", "failed", "--json").returncode == 0
        logs = daemon.logs()  # listener failures are logged; nothing of the daemon's own is
        assert "eventbus.daemon: connection failed" not in logs
        assert "eventbus.daemon: request" not in logs
        assert "Exception in callback" not in logs
        assert "ERROR   eventbus.journal" not in logs
        assert "ERROR   eventbus.emitter: observer" not in logs
