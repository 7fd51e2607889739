"""The wire protocol spoken by hand over the real socket: bad input never hurts the daemon."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import stat
import subprocess
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eventbus_cli.client import Client
from tests.harness import EVENTBUS, Daemon, started


class Line:
    """A raw connection that sends bytes and reads reply lines."""

    def __init__(self, daemon: Daemon) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(str(daemon.socket))
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> dict[str, Any]:
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            assert chunk, "the daemon closed the connection"
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)  # type: ignore[no-any-return]

    def closed(self) -> bool:
        """Whether the daemon closed the connection (a reset counts: it had unread input)."""
        try:
            return self.buffer == b"" and self.sock.recv(65536) == b""
        except ConnectionResetError:
            return True


@pytest.fixture
def connect(daemon: Daemon) -> Iterator[Callable[[], Line]]:
    """Open raw connections to the daemon; all are closed after the test."""
    opened: list[Line] = []

    def open_line() -> Line:
        opened.append(Line(daemon))
        return opened[-1]

    yield open_line
    for line in opened:
        line.sock.close()


def error_code(reply: dict[str, Any]) -> str:
    assert reply["ok"] is False, reply
    assert reply["error"]["message"]
    return reply["error"]["code"]  # type: ignore[no-any-return]


def test_hello_tells_the_protocol_and_daemon_version(
    daemon: Daemon, connect: Callable[[], Line]) -> None:
    line = connect()
    line.send(b'{"id": "a", "op": "hello"}\n')
    reply = line.reply()
    assert reply["id"] == "a"
    assert reply["ok"] is True
    assert reply["result"]["protocol"] == 1
    assert reply["result"]["version"]


@pytest.mark.parametrize(
    ("request_line", "code"),
    [
        (b"garbage\n", "bad_json"),
        (b"[1, 2]\n", "bad_json"),
        (b'\xff\xfe{"id":1}\n', "bad_json"),
        (b'{"op": "hello"}\n', "bad_request"),
        (b'{"id": true, "op": "hello"}\n', "bad_request"),
        (b'{"id": 1, "op": "launch"}\n', "unknown_op"),
        (b'{"id": 1, "op": 7}\n', "unknown_op"),
        (b'{"id": 1, "op": "emit"}\n', "bad_request"),
        (b'{"id": 1, "op": "emit", "event": 5}\n', "bad_request"),
        (b'{"id": 1, "op": "emit", "event": "bad id!"}\n', "invalid_event"),
        (b'{"id": 1, "op": "emit", "event": "user_created", "args": {}}\n', "bad_request"),
        (b'{"id": 1, "op": "emit", "event": "user_created", "kwargs": [1]}\n', "bad_request"),
        (b'{"id": 1, "op": "emit", "event": "user_created", "extra": 1}\n', "bad_request"),
        (b'{"id": 1, "op": "emit_many", "events": {}}\n', "bad_request"),
        (b'{"id": 1, "op": "emit_many", "events": [{"event": "x"}, 3]}\n', "bad_request"),
        (b'{"id": 1, "op": "list", "state": "lost"}\n', "bad_request"),
        (b'{"id": 1, "op": "list", "limit": -1}\n', "bad_request"),
    ],
)
def test_bad_requests_get_an_error_and_the_connection_stays_usable(
    daemon: Daemon, connect: Callable[[], Line], request_line: bytes, code: str
) -> None:
    line = connect()
    line.send(request_line)
    assert error_code(line.reply()) == code
    line.send(b'{"id": 2, "op": "emit", "event": "user_created", "kwargs": {"n": 1}}\n')
    assert line.reply() == {"id": 2, "ok": True,
                            "result": {"event_id": "user_created", "deliveries": 1}}
    assert daemon.wait_for_records(1) == [{"args": [], "kwargs": {"n": 1}}]


def test_a_bad_event_in_a_batch_refuses_the_whole_batch(
    daemon: Daemon, connect: Callable[[], Line]) -> None:
    line = connect()
    line.send(b'{"id": 1, "op": "emit_many", "events": [{"event": "user_created"}, '
              b'{"event": "user_created", "args": 1}]}\n')
    reply = line.reply()
    assert error_code(reply) == "bad_request"
    assert "events[1]" in reply["error"]["message"]
    assert daemon.json("queue")["succeeded"] == 0


def test_an_oversize_line_gets_an_error_and_the_connection_is_closed(
    daemon: Daemon, connect: Callable[[], Line]) -> None:
    line = connect()
    line.send(b'{"id": 1, "op": "hello"}\n')
    big = b'{"id": 2, "op": "emit", "event": "user_created", "kwargs": {"x": "' + b"a" * 1_100_000
    line.send(big + b'"}}\n')
    assert line.reply()["ok"] is True
    reply = line.reply()
    assert error_code(reply) == "too_large"
    assert "max_message_bytes" in reply["error"]["message"]
    assert line.closed()
    assert daemon.cli("emit", "user_created").returncode == 0
    daemon.wait_for_records(1)


def test_an_oversize_emit_from_the_command_says_its_size_and_the_limit(daemon: Daemon) -> None:
    big = daemon.root / "big.txt"
    big.write_text("a" * 1_100_000)
    result = daemon.cli("emit", "user_created", "--kw", f"x=@{big}")
    assert result.returncode == 1
    assert "max_message_bytes (1048576 bytes)" in result.stderr
    assert re.search(r"this request was 1,1\d\d,\d\d\d bytes", result.stderr), result.stderr


def test_half_a_line_then_close_gets_an_error_and_nothing_happens(
    daemon: Daemon, connect: Callable[[], Line]) -> None:
    line = connect()
    line.send(b'{"id": 1, "op": "emit", "event": "user_cr')
    line.sock.shutdown(socket.SHUT_WR)
    assert error_code(line.reply()) == "bad_json"
    assert line.closed()
    assert daemon.json("queue")["succeeded"] == 0


def test_pipelined_requests_are_answered_in_order(
    daemon: Daemon, connect: Callable[[], Line]) -> None:
    line = connect()
    requests = [{"id": n, "op": "emit", "event": "bulk.pipe", "args": [n]} for n in range(500)]
    requests[250] = {"id": 250, "op": "nope"}
    line.send(b"".join(json.dumps(request).encode() + b"\n" for request in requests))
    replies = [line.reply() for _ in requests]
    assert [reply["id"] for reply in replies] == list(range(500))
    assert [reply["ok"] for reply in replies].count(False) == 1
    assert len(daemon.wait_for_records(499)) == 499


def test_many_concurrent_connections(
    daemon: Daemon, connect: Callable[[], Line]) -> None:
    def client(number: int) -> None:
        line = connect()
        for n in range(50):
            line.send(json.dumps({"id": n, "op": "emit", "event": "bulk.many",
                                  "args": [number, n]}).encode() + b"\n")
            assert line.reply()["ok"] is True

    threads = [threading.Thread(target=client, args=(number,)) for number in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    records = daemon.wait_for_records(1000)
    assert sorted(tuple(record["args"]) for record in records) == [
        (number, n) for number in range(20) for n in range(50)
    ]


def test_a_client_that_vanishes_mid_request_does_not_hurt(
    daemon: Daemon, connect: Callable[[], Line]) -> None:
    for _ in range(20):
        line = connect()
        line.send(b'{"id": 1, "op": "status"}\n{"id": 2, "op": "li')
        line.sock.close()
    assert daemon.json("status")["pid"]


def _as_another_user(uid: int, work: Callable[[], str]) -> str:
    """Fork a child that drops to ``uid`` and runs ``work``; what it returned, or raised."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, on 3.12+
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            os.setgid(uid)
            os.setuid(uid)
            os.write(write_end, work().encode())
        except BaseException as exc:
            os.write(write_end, f"{type(exc).__name__}: {exc}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as child:
        said = child.read().decode()
    os.waitpid(pid, 0)
    return said


def _reply_as_another_user(path: str, uid: int) -> bytes:
    """As ``uid``, send an emit and hand back what the daemon answered."""

    def send() -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(path)
            sock.sendall(b'{"id": 1, "op": "emit", "event": "user_created"}\n')
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
            received = b""
            with contextlib.suppress(ConnectionResetError):  # it had unread input
                while chunk := sock.recv(65536):
                    received += chunk
            return received.decode()

    return _as_another_user(uid, send).encode()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client under another uid")
def test_another_uid_is_refused_even_when_the_socket_is_opened_up(
    daemon: Daemon, connect: Callable[[], Line]
) -> None:
    os.chmod(daemon.socket.parent, 0o755)
    os.chmod(daemon.socket, 0o666)
    os.chmod(daemon.root, 0o755)
    data = _reply_as_another_user(str(daemon.socket), 65534)
    reply = json.loads(data)
    assert error_code(reply) == "not_allowed"
    assert "uid 65534" in reply["error"]["message"]
    assert "allow_uids" in reply["error"]["message"]
    assert daemon.json("queue")["succeeded"] == 0
    assert "refused a connection" in daemon.logs()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client under another uid")
def test_an_allowed_uid_reaches_the_socket_without_opening_it_up(short_dir: Path) -> None:
    os.chmod(short_dir, 0o755)  # a folder others may pass, as /run is
    for daemon in started(short_dir, config="[daemon]\nallow_uids = [65534]\n"):
        assert stat.S_IMODE(os.stat(daemon.socket).st_mode) == 0o666
        reply = json.loads(_reply_as_another_user(str(daemon.socket), 65534))
        assert reply["ok"], reply
        assert reply["result"]["event_id"] == "user_created"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client under another uid")
def test_a_refused_client_always_reads_why(daemon: Daemon) -> None:
    os.chmod(daemon.socket.parent, 0o755)
    os.chmod(daemon.socket, 0o666)
    os.chmod(daemon.root, 0o755)

    def send_after_the_refusal() -> str:
        # The worst case for a client: its request leaves only after the daemon has
        # written the refusal and ended its side. The daemon must still take the bytes.
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(daemon.socket))
            refusal = b""
            while chunk := sock.recv(65536):
                refusal += chunk
            sock.sendall(b'{"id": 1, "op": "emit", "event": "user_created"}\n')
            return refusal.decode()

    def emit() -> str:
        with Client(daemon.socket, timeout=10) as client:
            client.emit("user_created")
        return "accepted"

    assert error_code(json.loads(_as_another_user(65534, send_after_the_refusal))) == "not_allowed"
    for _ in range(5):
        said = _as_another_user(65534, emit)
        assert said.startswith("RemoteNotAllowedError: uid 65534"), said
        assert "[not_allowed]" in said
    assert daemon.json("queue")["succeeded"] == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client under another uid")
def test_allow_uids_lets_another_uid_in(short_dir: Path) -> None:
    daemon = Daemon(short_dir, config="[daemon]\nallow_uids = [65534]\n").start()
    try:
        os.chmod(daemon.socket.parent, 0o755)
        os.chmod(daemon.socket, 0o666)
        os.chmod(daemon.root, 0o755)
        reply = json.loads(_reply_as_another_user(str(daemon.socket), 65534))
        assert reply == {"id": 1, "ok": True,
                         "result": {"event_id": "user_created", "deliveries": 1}}
    finally:
        daemon.dispose()


def test_keyword_names_that_emit_itself_uses_reach_the_listener(
    daemon: Daemon, connect: Callable[[], Line]
) -> None:
    line = connect()
    line.send(b'{"id": 1, "op": "emit", "event": "user_created", '
              b'"kwargs": {"event_id": 1, "self": 2, "args": 3, "a-b": 4}}\n')
    assert line.reply()["ok"] is True
    assert daemon.wait_for_records(1) == [
        {"args": [], "kwargs": {"event_id": 1, "self": 2, "args": 3, "a-b": 4}}
    ]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to serve a socket as another uid")
def test_a_client_sends_nothing_to_a_daemon_another_user_runs(short_dir: Path) -> None:
    """Another user who creates the socket first must not read our emits."""
    os.chmod(short_dir, 0o755)
    folder = short_dir / "planted"
    folder.mkdir()
    os.chown(folder, 65534, 65534)
    path = folder / "eb.sock"
    ready_read, ready_write = os.pipe()
    got_read, got_write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, on 3.12+
        pid = os.fork()
    if pid == 0:  # the planted "daemon": never return into pytest
        try:
            os.setgid(65534)
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX) as server:
                server.bind(str(path))
                server.listen(1)
                os.write(ready_write, b"ready")
                conn, _ = server.accept()
                conn.settimeout(10)
                received = b""
                with contextlib.suppress(OSError):
                    while chunk := conn.recv(65536):
                        received += chunk
                os.write(got_write, received or b"nothing")
        finally:
            os._exit(0)
    os.close(ready_write)
    os.close(got_write)
    assert os.read(ready_read, 100) == b"ready"
    result = subprocess.run([EVENTBUS, "--socket", str(path), "emit", "user_created", "--kw",
                             "secret=hunter2"], capture_output=True, text=True, timeout=30,
                            check=False)
    with os.fdopen(got_read, "rb") as got:
        received = got.read()
    os.waitpid(pid, 0)
    os.close(ready_read)
    assert result.returncode == 1
    assert "runs as uid 65534" in result.stderr
    assert "nothing was sent" in result.stderr
    assert received == b"nothing"
