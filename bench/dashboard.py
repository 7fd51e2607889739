"""The dashboard: page times with a long failed list, and what its live view costs the daemon.

Run: .venv/bin/pip install -e '.[test]' && .venv/bin/python bench/dashboard.py [FAILED]

- pages: a real daemon (a process) keeping FAILED failed deliveries (default 10,000), the
  dashboard served by uvicorn in this process; each page fetched 30 times over HTTP, p50 and
  p95 in ms. The target: every page under 100 ms. Its peer, in the same run: the bare
  ``list`` op for the same page over the socket (what any page costs at least).
- live: the daemon's CPU (from /proc) over 10 s with no dashboard open, then over 10 s with
  the overview's live stream open; the target is under 2% of a core more.
"""

from __future__ import annotations

import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from daemon import start_daemon  # bench/daemon.py: this script's folder is on sys.path

from eventbus_cli.client import Client
from eventbus_cli.dashboard.server import dashboard_app, standalone_board

LISTENERS = '''
from eventbus_cli import listener

@listener("webhook", retries=0)
def webhook(url):
    raise ConnectionError(f"target {url} is down")

@listener("report", retries=0)
async def report(**kwargs):
    raise ValueError("the template is missing")
'''
CONFIG = "[delivery]\nkeep_failed = 100000\n"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


def timed(url: str, runs: int = 30) -> tuple[float, float]:
    took = []
    for _ in range(runs):
        began = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read()
        took.append((time.perf_counter() - began) * 1000)
    took.sort()
    return statistics.median(took), took[int(len(took) * 0.95) - 1]


def main() -> None:
    import uvicorn

    failed = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory(dir="/tmp") as root:
        process, sock = start_daemon(Path(root), LISTENERS, CONFIG)
        try:
            with Client(sock) as client:
                events = [{"event": "webhook", "kwargs": {"url": f"https://h/{n}"}}
                          if n % 4 else {"event": "report", "kwargs": {"n": n}}
                          for n in range(failed)]
                client.emit_many(events)
                assert client.join(300)
                kept = client.queue().failed_list
                middle = client.deliveries("failed", limit=failed // 2)[-1].id
            board = standalone_board(sock, (), token="bench", read_only=False)
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(128)
            server = uvicorn.Server(uvicorn.Config(dashboard_app(board), log_config=None,
                                                   access_log=False))
            threading.Thread(target=server.run, kwargs={"sockets": [listener]},
                             daemon=True).start()
            url = f"http://127.0.0.1:{listener.getsockname()[1]}"
            print(f"pages, with {kept:,} failed deliveries kept (ms, p50 / p95 of 30):")
            with Client(sock) as client:
                began = time.perf_counter()
                for _ in range(30):
                    client.deliveries("failed", 51)
                floor = (time.perf_counter() - began) / 30 * 1000
            for path in ("/", "/failed", f"/failed?before={middle}",
                         "/failed?listener=bench%3Areport", "/failed?text=no+such+error",
                         f"/deliveries/{middle}", "/listeners", "/events"):
                p50, p95 = timed(url + path)
                print(f"  {path:<36} {p50:6.1f} / {p95:6.1f}")
            print(f"  (the bare list op of one page over the socket: {floor:.1f} ms)")

            quiet_before = cpu_seconds(process.pid)
            time.sleep(10)
            quiet = (cpu_seconds(process.pid) - quiet_before) / 10
            stop = threading.Event()

            def watch() -> None:
                with urllib.request.urlopen(url + "/live/counts", timeout=30) as stream:
                    while not stop.is_set():
                        stream.readline()

            threading.Thread(target=watch, daemon=True).start()
            time.sleep(1)
            live_before = cpu_seconds(process.pid)
            time.sleep(10)
            live = (cpu_seconds(process.pid) - live_before) / 10
            stop.set()
            print(f"live view: the daemon used {quiet * 100:.2f}% of a core with no dashboard "
                  f"open, {live * 100:.2f}% with the overview's live stream open "
                  f"(+{(live - quiet) * 100:.2f} points; target < 2)")
            server.should_exit = True
        finally:
            process.terminate()
            process.wait(30)


if __name__ == "__main__":
    main()
