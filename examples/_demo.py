"""Run an example: a real `eventbus serve` on the example's own listeners, then commands.

Each example file is a listener module and a script at once. Run as a script, it calls
:func:`demo`, which copies the file into a fresh listeners directory under /tmp, starts the
daemon there on a private socket, runs the example's `eventbus` commands one by one (printing
each with its output), stops the daemon with SIGTERM, and prints what the listeners logged.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

EVENTBUS = str(Path(sys.executable).parent / "eventbus")


def demo(example: str, commands: Sequence[Sequence[str]],
         then: Callable[[dict[str, str]], None] | None = None) -> int:
    """Serve ``example`` (a listener file), run each of ``commands`` as ``eventbus ...``, then
    ``then(environment)`` if given; return 0 if the daemon started and stopped cleanly."""
    root = Path(tempfile.mkdtemp(prefix="eb-demo-", dir="/tmp"))
    try:
        listeners = root / "listeners.d"
        listeners.mkdir()
        shutil.copy(example, listeners / Path(example).name)
        env = {**os.environ, "EVENTBUS_SOCKET": str(root / "run" / "eventbus.sock")}
        env.pop("EVENTBUS_CONFIG", None)
        log = root / "daemon.log"
        with open(log, "wb") as out:
            daemon = subprocess.Popen([EVENTBUS, "serve", "--listeners-dir", str(listeners)],
                                      env=env, stdout=out, stderr=out, cwd=root)
        try:
            _wait_until_ready(env, daemon)
            for command in commands:
                print(f"$ eventbus {shlex.join(command)}", flush=True)
                subprocess.run([EVENTBUS, *command], env=env, timeout=60, check=False,
                               stderr=subprocess.STDOUT)
            if then is not None:
                then(env)
        finally:
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(timeout=60)
        print("\nwhat the listeners logged:")
        for line in log.read_text().splitlines():
            if "eventbus_listeners." in line:
                print("  " + line.split(" ", 2)[2])
        return code
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _wait_until_ready(env: dict[str, str], daemon: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise SystemExit(f"the daemon exited with status {daemon.returncode}")
        probe = subprocess.run([EVENTBUS, "status", "--check"], env=env, capture_output=True,
                               check=False)
        if probe.returncode != 3:
            return
        time.sleep(0.1)
    raise SystemExit("the daemon did not start within 15 s")
