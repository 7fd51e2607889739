"""The real daemon served in this process, and the real `eventbus` command run in it.

:class:`ServedDaemon` runs :func:`serve` on an event loop of its own thread (a blocking
portal), so that a test may drive it with the blocking :class:`Client` and the command line;
:func:`run_cli` runs the console entry point, ``main()``, under click's isolation. Together
they are the harness's :class:`~tests.harness.Daemon` without starting a process for the
daemon or for each command. Tests that need a process (signals, exit codes, kill -9,
rlimits) ask for one with ``@pytest.mark.process``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import traceback
from concurrent.futures import Future
from functools import partial
from pathlib import Path

from anyio.from_thread import start_blocking_portal
from typer.testing import CliRunner

from eventbus_cli import Client, Config, NoDaemonError
from eventbus_cli.cli.app import main
from eventbus_cli.daemon.server import serve

_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s"


class ServedDaemon:
    """``serve(config)`` on a thread of its own; its log records go to ``log``, and
    ``environ`` is set in this process while it runs (its listeners read it)."""

    def __init__(self, config: Config, log: Path, environ: dict[str, str]) -> None:
        self.config = config
        self.log = log
        self.environ = environ
        self._stack = contextlib.ExitStack()
        self._future: Future[None] | None = None

    def start(self) -> None:
        """Serve; return once the daemon accepts requests, or raise what stopped it."""
        stack = self._stack
        for name, value in self.environ.items():
            stack.callback(_restore, name, os.environ.get(name))
            os.environ[name] = value
        handler = logging.FileHandler(self.log)
        handler.setFormatter(logging.Formatter(_FORMAT, "%Y-%m-%d %H:%M:%S"))
        root = logging.getLogger()
        stack.callback(root.setLevel, root.level)
        stack.callback(root.removeHandler, handler)
        stack.callback(handler.close)
        root.addHandler(handler)
        root.setLevel(self.config.daemon.log_level.upper())
        try:
            portal = stack.enter_context(start_blocking_portal())
            self._future, _ = portal.start_task(partial(serve, self.config))
        except BaseException:
            stack.close()
            raise

    def stop(self, *, drain: bool = True, seconds: float = 30.0) -> None:
        """Ask it to stop over its socket (unless it stopped already), and wait until it has."""
        if self._future is None:
            return
        with contextlib.suppress(NoDaemonError), Client(self.config.daemon.socket_path,
                                                         timeout=seconds) as client:
            client.stop(drain=drain)
        try:
            self._future.result(timeout=seconds)
        finally:
            self._future = None
            self._stack.close()

    @property
    def running(self) -> bool:
        return self._future is not None and not self._future.done()


def _restore(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def run_cli(args: list[str], *, input: str | None, env: dict[str, str],
            cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `eventbus ARGS` in this process, in ``cwd`` with ``env`` as its environment, as
    the console script would (its ``main()``); the outcome as :func:`subprocess.run` gives it."""
    changes: dict[str, str | None] = {name: value for name, value in env.items()
                                      if os.environ.get(name) != value}
    changes.update({name: None for name in os.environ if name not in env})
    argv, here = sys.argv, Path.cwd()
    code = 0
    with CliRunner().isolation(input=input, env=changes) as (stdout, stderr, _):
        sys.argv = ["eventbus", *args]
        os.chdir(cwd)
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        except Exception:  # as the interpreter would: the traceback on stderr, status 1
            sys.stderr.write(traceback.format_exc())
            code = 1
        finally:
            sys.argv = argv
            os.chdir(here)
            sys.stdout.flush()
            sys.stderr.flush()
        out, err = stdout.getvalue(), stderr.getvalue()
    return subprocess.CompletedProcess(["eventbus", *args], code,
                                       out.decode("utf-8", "replace"),
                                       err.decode("utf-8", "replace"))
