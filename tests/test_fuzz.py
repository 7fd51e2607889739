"""Fuzz the wire protocol: thousands of malformed frames against the real daemon."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventbus_cli.protocol import OPS, ErrorCode
from tests.daemon import running

CODES = {value for name, value in vars(ErrorCode).items() if name.isupper()}
FIELDS = ["id", "op", "event", "args", "kwargs", "events", "state", "limit", "delivery",
          "deliveries", "all", "extra"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)
# Requests that look nearly right: known fields and ops, with values of any type.
requests = st.dictionaries(
    st.sampled_from(FIELDS),
    st.one_of(json_values, st.sampled_from(sorted(OPS)), st.sampled_from(["pending", "failed"])),
    max_size=6,
).map(json.dumps)
frames = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    json_values.map(json.dumps).map(str.encode),
    requests.map(str.encode),
    st.tuples(requests, st.integers(min_value=0, max_value=50)).map(
        lambda cut: cut[0][: cut[1]].encode()),  # cut short
).map(lambda frame: frame.replace(b"\n", b" "))

LISTENER = '''
import json, os
from eventbus_cli import listener

@listener("ping")
def ping(n):
    with open(os.environ["EVENTBUS_TEST_OUT"], "a") as out:
        out.write(json.dumps({"n": n}) + "\\n")
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
    with running(short_dir, listeners=LISTENER) as daemon:

        @settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
        @given(st.lists(frames, min_size=1, max_size=4))
        def exchange(batch: list[bytes]) -> None:
            replies = _exchange(daemon.socket, batch)
            assert len(replies) == sum(1 for frame in batch if frame.strip())
            for reply in replies:
                assert isinstance(reply["ok"], bool)
                if not reply["ok"]:
                    assert reply["error"]["code"] in CODES
                    assert reply["error"]["code"] != ErrorCode.INTERNAL, reply
                    assert reply["error"]["message"]

        exchange()
        assert daemon.process is not None
        assert daemon.process.poll() is None
        assert daemon.cli("emit", "ping", "--kw", "n:=1").returncode == 0
        assert daemon.wait_for_records(1) == [{"n": 1}]
        assert "Traceback" not in daemon.logs()
