"""What the CLI shows people: rich tables and a progress bar. ``--json`` output skips this."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

__all__ = (
    "print_deliveries",
    "print_delivery",
    "print_listeners",
    "print_queue",
    "print_status",
    "progress_bar",
    "tail_line",
    "watch_queue",
)

_COUNTERS = ("pending", "running", "retrying", "succeeded", "failed")


def _console() -> Console:
    console = Console()
    # Piped output has no width to fit; a wide one keeps rows greppable, one line each.
    return console if console.is_terminal else Console(width=max(console.width, 200))


def print_listeners(listeners: list[dict[str, Any]]) -> None:
    table = Table(title=f"{len(listeners)} listeners", title_justify="left")
    for column in ("name", "module", "events", "retries", "backoff", "timeout"):
        table.add_column(column, overflow="fold",
                         justify="right" if column in ("retries", "backoff", "timeout") else "left")
    for item in listeners:
        timeout = "none" if item["timeout"] is None else f"{item['timeout']:g}s"
        table.add_row(item["name"], item["module"], ", ".join(item["events"]),
                      str(item["retries"]), f"{item['backoff']:g}s", timeout)
    _console().print(table)


def print_queue(queue: dict[str, Any]) -> None:
    _console().print(_queue_table(queue))


def print_deliveries(deliveries: list[dict[str, Any]]) -> None:
    if not deliveries:
        _console().print("no deliveries in that state")
        return
    table = Table()
    for column in ("id", "event", "listener", "state", "attempts", "error", "args", "kwargs"):
        table.add_column(column, justify="right" if column in ("id", "attempts") else "left",
                         overflow="fold")
    for item in deliveries:
        table.add_row(
            str(item["id"]), item["event"], item["listener"], item["state"], str(item["attempts"]),
            item["error"] or "", json.dumps(item["args"]), json.dumps(item["kwargs"]),
        )
    _console().print(table)


def print_delivery(delivery: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key in ("id", "event", "listener", "state", "attempts", "error"):
        table.add_row(key, str(delivery[key] if delivery[key] is not None else ""))
    table.add_row("args", json.dumps(delivery["args"], ensure_ascii=False))
    table.add_row("kwargs", json.dumps(delivery["kwargs"], ensure_ascii=False))
    console = _console()
    console.print(table)
    if delivery["traceback"]:
        console.print()
        console.print(delivery["traceback"].rstrip(), markup=False, highlight=False)


def print_status(status: dict[str, Any]) -> None:
    queue = status["queue"]
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    rows = {
        "pid": status["pid"],
        "version": f"{status['version']} (protocol {status['protocol']})",
        "uptime": f"{status['uptime_s']:.0f}s",
        "socket": status["socket"],
        "config": status["config"] or "none (defaults)",
        "listeners": f"{status['listeners']} from {status['listeners_dir']}",
        "queue": "  ".join(f"{name} {queue[name]}" for name in (*_COUNTERS, "unrouted")),
        "journal": (f"{journal['path']} ({journal['bytes']:,} bytes)" + (
            "" if journal["writable"] else f"; cannot be written: {journal['error']}"))
        if (journal := status["journal"]) else "none (deliveries live in memory only)",
        "health": "healthy" if (health := status["health"])["healthy"]
        else "unhealthy: " + "; ".join(health["problems"]),
    }
    if status["draining"]:
        rows["state"] = "shutting down, draining the queue"
    for key, value in rows.items():
        table.add_row(key, str(value))
    _console().print(table)


@contextmanager
def progress_bar(total: int, description: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr; yields the function that advances it."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda done: bar.advance(task, done)


def tail_line(record: dict[str, Any]) -> str:
    """One ``eventbus tail`` line: local time to the microsecond, the kind, then the facts."""
    when = datetime.fromisoformat(record["timestamp"]).astimezone().strftime("%H:%M:%S.%f")
    kind = record["type"]
    if kind == "emitted":
        count = record["deliveries"]
        return f"{when} {kind:<8} {record['event']}  " + (
            f"{count} deliveries" if count else "unrouted (no listener matches)")
    if kind == "skipped":
        return f"{when} {kind:<8} {record['message']}"
    latency = record.get("latency")
    took = "" if latency is None else (
        f"  waited {latency * 1000:.3f} ms" if kind == "started" else f"  {latency * 1000:.3f} ms")
    error = f"  {record['error']}" if record.get("error") else ""
    return (f"{when} {kind:<8} {record['event']} -> {record['listener']}  "
            f"#{record['delivery']} attempt {record['attempt']}{took}{error}")


def watch_queue(fetch: Callable[[], dict[str, Any]], interval: float) -> None:
    """Redraw the queue's counters, with each listener's deliveries per second, every
    ``interval`` seconds until Ctrl-C; the view is erased on the way out."""
    before: dict[str, int] = {}
    then = time.monotonic()
    with Live(console=Console(), transient=True, auto_refresh=False) as live:
        try:
            while True:
                queue, now = fetch(), time.monotonic()
                done = {name: stats["succeeded"] + stats["failed"]
                        for name, stats in queue["listeners"].items()}
                rates = {name: (count - before.get(name, count)) / max(now - then, 1e-9)
                         for name, count in done.items()}
                live.update(_queue_table(queue, rates), refresh=True)
                before, then = done, now
                time.sleep(interval)
        except KeyboardInterrupt:
            pass


def _queue_table(queue: dict[str, Any], rates: dict[str, float] | None = None) -> Table:
    totals = "  ".join(f"{name} {queue[name]}" for name in (*_COUNTERS, "unrouted"))
    totals += f"  failed list {queue.get('failed_list', 0)}"
    table = Table(title=f"queue ({queue['queue_size']} max): {totals}", title_justify="left",
                  caption="Ctrl-C to stop" if rates is not None else None,
                  caption_justify="left")
    table.add_column("listener", overflow="fold")
    columns = (*_COUNTERS, "retried")
    for name in (*columns, "per second") if rates is not None else columns:
        table.add_column(name, justify="right")
    for name, stats in queue["listeners"].items():
        rate = () if rates is None else (f"{rates.get(name, 0.0):,.1f}",)
        table.add_row(name, *(str(stats[key]) for key in columns), *rate)
    return table
