"""How tables fit a terminal: whole words, one line per row, the important columns kept."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from rich.console import Console

from eventbus_cli.cli.render import _DELIVERY_COLUMNS, _Column, _fitted, _local, _queue_columns

ROW = ("1234", "user.created", "send_welcome_email", "failed", "3", "23:24:26", "-",
       "RuntimeError: listener exploded on purpose", "[1, 2]", '{"email": "ada@example.com"}')


def _drawn(width: int, columns: object, rows: list[tuple[str, ...]]) -> tuple[list[str], str]:
    table, note = _fitted(columns, rows, width)  # type: ignore[arg-type]
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(table)
    return out.getvalue().splitlines(), note or ""


@pytest.mark.parametrize("width", [40, 60, 80, 120, 200])
def test_a_delivery_table_fits_with_whole_headers_and_one_line_per_row(width: int) -> None:
    lines, note = _drawn(width, _DELIVERY_COLUMNS, [ROW, ROW])
    assert all(len(line) <= width for line in lines)
    assert len(lines) == 6  # top, header, rule, two rows, bottom: nothing wrapped
    header = lines[1]
    shown = [column.name for column in _DELIVERY_COLUMNS if f" {column.name} " in header]
    assert {"id", "state", "listener"} <= set(shown)  # the first to keep
    left_out = [column.name for column in _DELIVERY_COLUMNS if column.name not in shown]
    assert (f"not shown at this width: {', '.join(left_out)}" in note) == bool(left_out)
    assert "1234" in lines[3]
    assert " failed " in lines[3]  # a fixed cell is never cut


def test_at_sixty_columns_the_queue_counters_are_never_split() -> None:
    queue = {"listeners": {"send_welcome_email": {
        "pending": 3, "running": 1, "retrying": 0, "succeeded": 100, "failed": 1, "retried": 0}}}
    lines, note = _drawn(60, *_queue_columns(queue))
    assert all(len(line) <= 60 for line in lines)
    assert " failed " in lines[1]
    assert " pending " in lines[1]
    assert "retried" in note
    assert len(lines) == 5


def test_cells_are_text_not_markup() -> None:
    row = ("(tags: list[str])", "[bold]loud[/bold]")
    lines, _ = _drawn(80, [_Column("signature", 0), _Column("args", 1)], [row])
    assert "list[str]" in lines[3]
    assert "[bold]loud[/bold]" in lines[3]


def test_a_short_time_not_of_today_has_its_year() -> None:
    assert _local("2024-03-01T10:20:30+00:00", short=True).startswith("2024-03-01 ")
    today = datetime.now(UTC).isoformat()
    assert _local(today, short=True).count(":") == 2  # the time alone
