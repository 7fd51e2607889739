"""The journal's cost: bulk throughput with ``[journal]`` on against the same daemon without it.

Run: .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/journal.py [EVENTS]

Two daemons run side by side, one in memory mode and one with a journal; each figure is
``eventbus emit --file`` of EVENTS events (default 100,000) until the listener has run the
last delivery, the median of 3 runs taken in turns. Two listeners:

- no-op: most deliveries finish before their group is committed, so the journal writes
  little beyond the acknowledgement's commit;
- 2 ms: every delivery outlives a commit, so each is written when accepted and deleted
  when done (the journal's full cost per delivery).
"""

from __future__ import annotations

import shutil
import signal
import statistics
import sys
import tempfile
from pathlib import Path

from daemon import bulk, start_daemon  # bench/daemon.py: this script's folder is on sys.path

LISTENERS = '''
import anyio
from eventbus_cli import listener

@listener("bulk")
async def noop(*args, **kwargs):
    pass

@listener("slow.*")
async def two_ms(*args, **kwargs):
    await anyio.sleep(0.002)
'''


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    root = Path(tempfile.mkdtemp(prefix="eb-bench-", dir="/tmp"))
    daemons = {
        "memory": start_daemon(root / "memory", LISTENERS, "[daemon]\n"),
        "journal": start_daemon(root / "journal", LISTENERS, "[journal]\n"),
    }
    try:
        for case, event in (("no-op listener", "bulk"), ("2 ms listener", "slow.x")):
            rates: dict[str, list[float]] = {name: [] for name in daemons}
            for _ in range(3):
                for name, (_, sock) in daemons.items():
                    rates[name].append(bulk(sock, root / name, events, event))
            memory, journal = (statistics.median(rates[name]) for name in ("memory", "journal"))
            print(f"{case}, {events:,} events: memory {memory:,.0f}/s, journal {journal:,.0f}/s:"
                  f" {journal / memory:.2f}x (target >= 0.5x)")
        size = (root / "journal" / "eventbus.db").stat().st_size
        print(f"journal file after the runs: {size:,} bytes")
    finally:
        for process, _ in daemons.values():
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=120)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
