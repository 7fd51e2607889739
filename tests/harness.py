"""The real daemon on a short socket path, driven by the real `eventbus`: served in this
process (see tests/inprocess.py), or as a subprocess for a test marked ``process``."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from eventbus_cli.cli.app import _command_name
from eventbus_cli.config import resolve_config
from tests.inprocess import ServedDaemon, run_cli
from tests.waiting import replies

EVENTBUS = str(Path(sys.executable).parent / "eventbus")
IN_PROCESS = True
"""Whether a new :class:`Daemon` is served in this process; a test marked ``process`` sets
it False (tests/conftest.py)."""

RECORDER = '''
import json, os, time
from eventbus_cli import listener

@listener("user_created", "bulk.*")
def record(*args, **kwargs):
    with open(os.environ["EVENTBUS_TEST_OUT"], "a") as out:
        out.write(json.dumps({"args": list(args), "kwargs": kwargs}) + "\\n")

@listener("boom")
def explode(**kwargs):
    raise RuntimeError("listener exploded on purpose")

@listener("slow")
async def slow(seconds=0.3, **kwargs):
    import anyio
    await anyio.sleep(seconds)
    with open(os.environ["EVENTBUS_TEST_OUT"], "a") as out:
        out.write(json.dumps({"slow": seconds}) + "\\n")

@listener("gate")
async def gate(name, **kwargs):
    """Runs until the test opens the gate of this name (see Daemon.open_gate)."""
    import anyio, pathlib
    gates = pathlib.Path(os.environ["EVENTBUS_TEST_OUT"]).with_name("gates")
    gates.mkdir(exist_ok=True)
    (gates / (name + ".started")).touch()
    while not (gates / (name + ".open")).exists():
        await anyio.sleep(0.005)
    with open(os.environ["EVENTBUS_TEST_OUT"], "a") as out:
        out.write(json.dumps({"gate": name}) + "\\n")
'''


def wait_for(condition: Callable[[], object], seconds: float = 15.0,
             explain: Callable[[], str] = lambda: "") -> None:
    """Poll ``condition`` until it is true; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {seconds}s: {explain()}")
        time.sleep(0.01)


def short_directory() -> Path:
    """A fresh directory under /tmp, short enough for socket paths (AF_UNIX allows ~100 bytes)."""
    return Path(tempfile.mkdtemp(prefix="eb-", dir="/tmp"))


class Daemon:
    """An `eventbus serve` in its own directory, with the recorder listeners: in this
    process unless :data:`IN_PROCESS` is False or it needs rlimits of its own."""

    def __init__(self, root: Path, *, listeners: str = RECORDER, config: str | None = None,
                 extra_args: tuple[str, ...] = (), max_files: int | None = None,
                 max_file_bytes: int | None = None) -> None:
        self.root = root
        self.listeners_dir = root / "listeners.d"
        self.listeners_dir.mkdir(exist_ok=True)
        (self.listeners_dir / "recorder.py").write_text(listeners)
        self.socket = root / "run" / "eb.sock"
        self.out = root / "out.jsonl"
        self.log = root / "daemon.log"
        self.config = root / "eventbus.toml"
        if config is not None:
            self.config.write_text(config)
        self.env = {**os.environ, "EVENTBUS_SOCKET": str(self.socket),
                    "EVENTBUS_TEST_OUT": str(self.out)}
        self.env.pop("EVENTBUS_CONFIG", None)
        self.extra_args = extra_args
        self.max_files = max_files  # RLIMIT_NOFILE for the daemon, to run it out of descriptors
        self.max_file_bytes = max_file_bytes  # RLIMIT_FSIZE: a disk that fills up, per file
        self.process: subprocess.Popen[bytes] | None = None
        self.in_process = IN_PROCESS and max_files is None and max_file_bytes is None
        self.served: ServedDaemon | None = None

    def _limits(self) -> None:
        if self.max_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.max_files, self.max_files))
        if self.max_file_bytes is not None:
            # A write past the limit then fails with EFBIG, as on a full disk, instead of
            # killing the process with SIGXFSZ.
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.max_file_bytes, self.max_file_bytes))

    def start(self, *, wait: bool = True) -> Daemon:
        if self.in_process:
            return self._serve()
        args = [EVENTBUS, "serve", "--listeners-dir", str(self.listeners_dir), *self.extra_args]
        if self.config.exists():
            args[1:1] = ["--config", str(self.config)]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(args, cwd=self.root, env=self.env, stderr=log,
                                            stdout=log, preexec_fn=self._limits)
        if wait:
            self.wait_ready()
        return self

    @property
    def pid(self) -> int:
        """The daemon's process id (this process's, served in it)."""
        if self.in_process:
            return os.getpid()
        assert self.process is not None
        return self.process.pid

    @property
    def alive(self) -> bool:
        """Whether the daemon still runs."""
        if self.in_process:
            return self.served is not None and self.served.running
        return self.process is not None and self.process.poll() is None

    def _serve(self) -> Daemon:
        flags = dict(zip(self.extra_args[::2], self.extra_args[1::2], strict=True))
        assert set(flags) <= {"--log-level"}, f"{flags}: mark the test process"
        config = resolve_config(self.config if self.config.exists() else None,
                                socket=self.socket, listeners_dir=self.listeners_dir,
                                log_level=flags.get("--log-level"), environ=self.env)
        self.served = ServedDaemon(config, self.log, {"EVENTBUS_TEST_OUT": str(self.out)})
        try:
            self.served.start()
        except Exception as exc:
            self.served = None
            raise AssertionError(f"the daemon did not start: {exc!r}\n{self.logs()}") from exc
        return self

    def wait_ready(self, seconds: float = 15.0) -> None:
        if self.in_process:
            return
        deadline = time.monotonic() + seconds
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the daemon exited {self.process.returncode}:\n{self.logs()}")
            if self.serves():
                return
            time.sleep(0.02)
        raise AssertionError(f"the daemon did not answer within {seconds}s:\n{self.logs()}")

    def serves(self) -> bool:
        """Whether the daemon answers a request: past start-up, its broker open and its
        metrics listening (the socket accepts connections before that)."""
        return replies(self.socket, b'{"id": 1, "op": "hello"}\n', b'{"id":1')

    def answers(self) -> bool:
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(str(self.socket))
        except OSError:
            return False
        finally:
            probe.close()
        return True

    def logs(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def cli(self, *args: str, input: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        if self.in_process and _command_name(list(args)) != "serve":  # a daemon is a process
            return run_cli(list(args), input=input, env=env or self.env, cwd=self.root)
        return subprocess.run([EVENTBUS, *args], input=input, capture_output=True, text=True,
                              timeout=60, env=env or self.env, cwd=self.root, check=False)

    def json(self, *args: str) -> Any:
        result = self.cli(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def written(self) -> list[Any]:
        """The JSON values the listeners wrote to ``out``, a line each. A line still being
        written (no newline yet) is left for the next read, not parsed torn."""
        if not self.out.exists():
            return []
        text = self.out.read_text()
        return [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines()]

    def records(self) -> list[dict[str, Any]]:
        return self.written()

    def wait_for_records(self, count: int, seconds: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = self.records()
            if len(found) >= count:
                return found
            time.sleep(0.01)
        raise AssertionError(f"expected {count} records, got {len(self.records())}:\n{self.logs()}")

    def signal_and_wait_for_log(self, signum: int, text: str, seconds: float = 15.0) -> None:
        """Send ``signum`` and wait until the daemon's log shows ``text``."""
        assert self.process is not None
        self.process.send_signal(signum)
        self.wait_for_log(text, seconds)

    def wait_for_log(self, text: str, seconds: float = 15.0) -> None:
        wait_for(lambda: text in self.logs(), seconds, lambda: f"no {text!r} in:\n{self.logs()}")

    def emit_gates(self, *names: str) -> None:
        """Emit ``gate`` events and wait until each has started: from then on each call
        runs until :meth:`open_gate` lets it finish."""
        for name in names:
            assert self.cli("emit", "gate", "--kw", f"name={name}").returncode == 0
        gates = self.out.with_name("gates")
        wait_for(lambda: all((gates / f"{name}.started").exists() for name in names),
                 explain=self.logs)

    def open_gate(self, *names: str) -> None:
        gates = self.out.with_name("gates")
        gates.mkdir(exist_ok=True)
        for name in names:
            (gates / f"{name}.open").touch()

    def stop(self, signum: int = signal.SIGTERM, seconds: float = 30.0) -> int:
        """Stop it as ``signum`` would (SIGTERM: drain first); its exit status. Served in
        this process it has none: 0 once ``serve()`` returned, and what it raised is raised
        here (a test of the status itself is marked ``process``)."""
        if self.in_process:
            assert signum in (signal.SIGTERM, signal.SIGINT), "mark the test process"
            if self.served is not None:
                self.served.stop(drain=True, seconds=seconds)
                self.served = None
            return 0
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(timeout=seconds)

    def kill(self) -> None:
        """kill -9: only a process can be killed so (mark the test ``process``)."""
        assert not self.in_process, "kill -9 needs a daemon process: mark the test process"
        self.dispose()

    def dispose(self) -> None:
        """Make sure it is gone: stopped without draining, or killed."""
        if self.served is not None:
            self.served.stop(drain=False)
            self.served = None
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def started(root: Path, **options: Any) -> Iterator[Daemon]:
    """A fixture body: start a daemon, and make sure it is gone afterwards."""
    daemon = Daemon(root, **options).start()
    try:
        yield daemon
    finally:
        daemon.dispose()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def running(root: Path, **options: Any) -> Iterator[Daemon]:
    """``with running(root, ...) as daemon``: a started daemon, gone afterwards."""
    yield from started(root, **options)
