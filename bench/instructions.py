"""Costs counted in instructions, for figures that this machine's timing noise cannot settle.

Run: .venv/bin/python bench/instructions.py   (needs valgrind; about two minutes)

Two runs of the same code here differ by 1-3% in time, and a cost of a few percent needs a
steadier ruler. valgrind's callgrind counts the instructions a process executes, and the
count is the same on every run of the same code and input, whatever else the machine does.
Each case runs in a child process under callgrind at two sizes; the difference of the two
counts over the difference of the sizes is the cost of one more event, free of start-up.

The cases are bench/emitter.py's: events with one argument and one keyword into one and into
three no-op async listeners (``await aemit`` with the default queue), with the delivery
timings that ``[metrics]`` turns on and without. The target for their cost is at most 5%.

Instructions are not time: a mispredicted branch or a cache miss costs cycles that no
instruction shows, so the timed figures (bench/emitter.py, bench/schedules.py) stay the
judges of speed; this says how much work the timings add.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import anyio
from emitter import run_eventbus  # bench/emitter.py: this script's folder is on sys.path

SIZES = (20_000, 50_000)
CASES = (("plain", 1), ("timed", 1), ("plain", 3), ("timed", 3))
Case = tuple[str, int]


def child(timed: str, listeners: int, events: int) -> None:
    handled = anyio.run(run_eventbus, events, listeners, timed == "timed")
    assert handled == events * listeners, f"{handled} deliveries, not {events * listeners}"


def instructions(case: Case, events: int) -> int:
    """Instructions one child process executes running ``case`` with ``events`` events."""
    timed, listeners = case
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         __file__, "--child", timed, str(listeners), str(events)],
        capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},  # the same dict layouts on every run
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"no instruction count from callgrind:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def per_event(counts: dict[tuple[Case, int], int], case: Case) -> float:
    small, large = SIZES
    return (counts[case, large] - counts[case, small]) / (large - small)


def main() -> None:
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    runs = [(case, events) for case in CASES for events in SIZES]
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        counts = dict(zip(runs, pool.map(lambda run: instructions(*run), runs), strict=True))
    for listeners in (1, 3):
        plain = per_event(counts, ("plain", listeners))
        timed = per_event(counts, ("timed", listeners))
        print(f"metrics, {listeners} listener(s): {timed:,.0f} instructions an event with the "
              f"delivery timings kept, {plain:,.0f} without: {100 * (timed / plain - 1):+.2f}%")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
