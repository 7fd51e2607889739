"""What the CLI shows people: rich tables and a progress bar. ``--json`` output skips this."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from ..plural import counted
from .app import wire

if TYPE_CHECKING:
    from ..protocol.results import QueueCounts

__all__ = (
    "print_deliveries",
    "print_delivery",
    "print_events",
    "print_listeners",
    "print_queue",
    "print_schedules",
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


class _Column(NamedTuple):
    """A table column: ``rank`` orders which stay when the width runs out (0 first);
    a ``fixed`` one is never cut short, the others end in an ellipsis where they must."""

    name: str
    rank: int
    fixed: bool = False
    right: bool = False


_SHORTEST_CUT = 10  # the fewest characters a column that may be cut still gets


def _fitted(columns: Sequence[_Column], rows: Sequence[Sequence[str]], width: int,
            ) -> tuple[Table, str | None]:
    """A table of the columns that fit in ``width``, by rank: one line per row, never a
    word split across lines; and a note naming the columns left out, if any."""
    natural = [max(len(column.name), *(len(row[i]) for row in rows)) if rows
               else len(column.name) for i, column in enumerate(columns)]
    kept: set[int] = set()
    used = 1  # the table's left border; each column adds its padding and right border
    for i in sorted(range(len(columns)), key=lambda i: columns[i].rank):
        need = 3 + (natural[i] if columns[i].fixed else min(natural[i], _SHORTEST_CUT))
        if kept and used + need > width:
            break
        kept.add(i)
        used += need
    # Fixed columns get what they need; the others share the rest, the narrow ones first.
    widths = {i: natural[i] for i in kept if columns[i].fixed}
    flexible = sorted((i for i in kept if not columns[i].fixed), key=lambda i: natural[i])
    room = width - 1 - sum(3 + w for w in widths.values()) - 3 * len(flexible)
    for left, i in zip(range(len(flexible), 0, -1), flexible, strict=True):
        widths[i] = max(1, min(natural[i], room // left))
        room -= widths[i]
    table = Table()
    for i, column in enumerate(columns):
        if i in kept:
            table.add_column(column.name, justify="right" if column.right else "left",
                             no_wrap=True, overflow="ellipsis", width=widths[i])
    for row in rows:  # as text: a signature's list[str] or an event's "[bold]" is no markup
        table.add_row(*(Text(cell) for i, cell in enumerate(row) if i in kept))
    left_out = [column.name for i, column in enumerate(columns) if i not in kept]
    note = (f"not shown at this width: {', '.join(left_out)} (--json shows everything)"
            if left_out else None)
    return table, note


def _print_fitted(columns: Sequence[_Column], rows: Sequence[Sequence[str]]) -> None:
    console = _console()
    table, note = _fitted(columns, rows, console.width)
    console.print(table)
    if note:
        console.print(note, soft_wrap=True, style="dim", markup=False)


_LISTENER_COLUMNS = (
    _Column("name", 0), _Column("events", 1), _Column("signature", 2),
    _Column("retries", 3, fixed=True, right=True), _Column("backoff", 6, fixed=True, right=True),
    _Column("timeout", 3, fixed=True, right=True), _Column("check", 4, fixed=True),
)


def print_listeners(listeners: list[dict[str, Any]]) -> None:
    _console().print(counted(len(listeners), "listener"), soft_wrap=True)
    rows = [(item["name"], ", ".join(item["events"]), item.get("signature") or "?",
             str(item["retries"]), f"{item['backoff']:g}s",
             "none" if item["timeout"] is None else f"{item['timeout']:g}s",
             item.get("check", ""))
            for item in listeners]
    _print_fitted(_LISTENER_COLUMNS, rows)


_SCHEDULE_COLUMNS = (_Column("name", 0), _Column("schedule", 1), _Column("event", 2),
                     _Column("next", 3, fixed=True), _Column("last", 5, fixed=True),
                     _Column("outcome", 4))


def print_schedules(schedules: list[dict[str, Any]]) -> None:
    if not schedules:
        _console().print("no schedules: declare cron(...) or every(...) in a listener file, "
                         "or [[schedule]] in eventbus.toml", markup=False)
        return
    rows = [(item["name"], item["text"], item["event"], _local(item["next"]),
             _local(item["last"]), item["outcome"] or "-") for item in schedules]
    _print_fitted(_SCHEDULE_COLUMNS, rows)


_EVENT_COLUMNS = (_Column("event", 0), _Column("listener", 1), _Column("signature", 2),
                  _Column("check", 3, fixed=True))


def print_events(catalog: list[dict[str, Any]]) -> None:
    if not catalog:
        _console().print("no listener is loaded, so no event is taken")
        return
    rows = [(entry["event"] + (" (pattern)" if entry["pattern"] else ""), item["listener"],
             item["signature"] or "?", item["check"])
            for entry in catalog for item in entry["listeners"]]
    _print_fitted(_EVENT_COLUMNS, rows)


def print_queue(queue: dict[str, Any]) -> None:
    _console().print(_queue_totals(queue), soft_wrap=True)
    _print_fitted(*_queue_columns(queue))


_DELIVERY_COLUMNS = (
    _Column("id", 0, fixed=True, right=True), _Column("event", 3), _Column("listener", 2),
    _Column("state", 1, fixed=True), _Column("attempts", 5, fixed=True, right=True),
    _Column("created", 4, fixed=True), _Column("due", 5, fixed=True), _Column("error", 6),
    _Column("args", 7), _Column("kwargs", 8),
)


def print_deliveries(deliveries: list[dict[str, Any]], *, state: str | None = None) -> None:
    console = _console()
    if not deliveries:
        console.print(f"no {state} deliveries" if state else "no deliveries: nothing is "
                      "pending, running, retrying or in the failed list")
        return
    rows = [(str(item["id"]), item["event"] + _ordering(item), item["listener"], item["state"],
             str(item["attempts"]), _local(item.get("created"), short=True),
             _local(item.get("due"), short=True), item["error"] or "",
             json.dumps(item["args"], ensure_ascii=False),
             json.dumps(item["kwargs"], ensure_ascii=False))
            for item in deliveries]
    _print_fitted(_DELIVERY_COLUMNS, rows)


def _ordering(item: dict[str, Any]) -> str:
    """`` [high, key user:42]`` for a delivery with a priority or an order key."""
    marks = [item["priority"]] if item.get("priority", "normal") != "normal" else []
    if item.get("order_key") is not None:
        marks.append(f"key {item['order_key']}")
    return f" [{', '.join(marks)}]" if marks else ""


def _local(iso: str | None, *, short: bool = False) -> str:
    """An ISO 8601 time from the daemon, in local time: to the second, or (``short``) the
    time alone when it is today, else the date with its year and the minute."""
    if iso is None:
        return "-"
    moment = datetime.fromisoformat(iso).astimezone()
    if not short:
        return moment.strftime("%Y-%m-%d %H:%M:%S %z")
    today = moment.date() == datetime.now().astimezone().date()
    return moment.strftime("%H:%M:%S" if today else "%Y-%m-%d %H:%M")


def print_delivery(delivery: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key in ("id", "event", "listener", "state", "attempts", "error"):
        table.add_row(key, Text(str(delivery[key] if delivery[key] is not None else "")))
    if delivery.get("priority", "normal") != "normal":
        table.add_row("priority", delivery["priority"])
    if delivery.get("order_key") is not None:
        table.add_row("order key", Text(delivery["order_key"]))
    for key, label in (("created", "created"), ("due", "due"),
                       ("last_attempt", "last attempt"), ("failed", "failed")):
        if delivery.get(key) is not None:
            table.add_row(label, _local(delivery[key]))
    table.add_row("args", Text(json.dumps(delivery["args"], ensure_ascii=False)))
    table.add_row("kwargs", Text(json.dumps(delivery["kwargs"], ensure_ascii=False)))
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
        "queue": "  ".join(f"{name} {queue[name]}" for name in (*_COUNTERS, "unrouted"))
        + (f"  scheduled {queue['scheduled']}, the next at {_local(queue.get('next_due'))}"
           if queue.get("scheduled") else ""),
        "journal": (f"{journal['path']} ({journal['bytes']:,} bytes)" + (
            "" if journal["writable"] else f"; cannot be written: {journal['error']}"))
        if (journal := status["journal"]) else "none (deliveries live in memory only)",
        "metrics": status.get("metrics") or "off (no [metrics] in the config)",
    }
    if backend := status.get("backend"):
        daemons = ", ".join(f"{d['name']} ({d['host']}, pid {d['pid']})"
                            for d in backend["daemons"]) or "none seen yet"
        rows["journal"] = f"none: {backend['store']} keeps the deliveries"
        rows["backend"] = (f"{backend['store']} {backend['version']} at {backend['url']}, prefix "
                           f"{backend['prefix']}, this daemon {backend['name']}" + (
                               "" if backend["available"]
                               else f"; UNREACHABLE: {backend['problem']}"))
        rows["daemons"] = daemons
    rows |= {
        "schedules": (f"{schedules['count']}, the next fire at {_local(schedules['next'])}"
                      if (schedules := status.get("schedules") or {}).get("count") else "none"),
        "health": "healthy" if (health := status["health"])["healthy"]
        else "unhealthy: " + "; ".join(health["problems"]),
    }
    if status["draining"]:
        rows["state"] = "shutting down, draining the queue"
    for key, value in rows.items():
        table.add_row(key, Text(str(value)))
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
            counted(count, "delivery") if count else "unrouted (no listener matches)")
    if kind == "skipped":
        return f"{when} {kind:<8} {record['message']}"
    if kind == "scheduled":
        count = counted(record["deliveries"], "delivery")
        return f"{when} {kind:<8} {record['event']}  {count} due {_local(record.get('due'))}"
    if kind == "fired":
        return (f"{when} {kind:<8} {record['event']}  schedule {record['schedule']}: "
                f"{record['outcome']}")
    latency = record.get("latency")
    took = "" if latency is None else (
        f"  waited {latency * 1000:.3f} ms" if kind == "started" else f"  {latency * 1000:.3f} ms")
    error = f"  {record['error']}" if record.get("error") else ""
    where = f"@{record['daemon']}" if record.get("daemon") else ""
    return (f"{when} {kind:<8} {record['event']}{_ordering(record)} -> {record['listener']}"
            f"{where}  #{record['delivery']} attempt {record['attempt']}{took}{error}")


def watch_queue(fetch: Callable[[], QueueCounts], interval: float) -> None:
    """Redraw the queue's counters, with each listener's deliveries per second, every
    ``interval`` seconds until Ctrl-C; the view is erased on the way out."""
    before: dict[str, int] = {}
    then = time.monotonic()
    with Live(console=Console(), transient=True, auto_refresh=False) as live:
        try:
            while True:
                queue, now = wire(fetch()), time.monotonic()
                done = {name: stats["succeeded"] + stats["failed"]
                        for name, stats in queue["listeners"].items()}
                rates = {name: (count - before.get(name, count)) / max(now - then, 1e-9)
                         for name, count in done.items()}
                table, note = _fitted(*_queue_columns(queue, rates), live.console.width)
                view = Table.grid()
                for part in (_queue_totals(queue), table, note, "Ctrl-C to stop"):
                    if part is not None:
                        view.add_row(part)
                live.update(view, refresh=True)
                before, then = done, now
                time.sleep(interval)
        except KeyboardInterrupt:
            pass


def _queue_totals(queue: Mapping[str, Any]) -> str:
    totals = "  ".join(f"{name} {queue[name]}" for name in (*_COUNTERS, "unrouted"))
    later = (f"  scheduled {queue['scheduled']} (next {_local(queue.get('next_due'))})"
             if queue.get("scheduled") else "")
    repeats = f"  duplicates {queue['duplicates']}" if queue.get("duplicates") else ""
    paused = queue.get("paused") or {}
    held = ("\npaused: " + ", ".join(f"{name} (until {_local(until)})" if until else name
                                     for name, until in sorted(paused.items()))
            if paused else "")
    return (f"queue ({queue['queue_size']} max): {totals}  failed list "
            f"{queue.get('failed_list', 0)}{later}{repeats}{held}")


_QUEUE_RANKS = {"pending": 1, "running": 2, "failed": 3, "succeeded": 4, "retrying": 5,
                "retried": 7, "per second": 6}


def _queue_columns(queue: Mapping[str, Any], rates: dict[str, float] | None = None,
                   ) -> tuple[list[_Column], list[tuple[str, ...]]]:
    counters = (*_COUNTERS, "retried")
    names = (*counters, "per second") if rates is not None else counters
    columns = [_Column("listener", 0),
               *(_Column(name, _QUEUE_RANKS[name], fixed=True, right=True) for name in names)]
    rows = [(name + (" (paused)" if stats.get("paused") else ""),
             *(str(stats[key]) for key in counters),
             *(() if rates is None else (f"{rates.get(name, 0.0):,.1f}",)))
            for name, stats in queue["listeners"].items()]
    return columns, rows
