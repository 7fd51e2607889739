"""Write the reference pages of the documentation from the code, so they cannot drift:

- ``reference/cli.md``: every command and option, from the Typer app;
- ``reference/config.md``: every config key with its type, default and range, from the
  config classes;
- ``reference/protocol.md``: every op with its fields and result, from the op table;
- ``reference/errors.md``: every error code a daemon sends, from ``ErrorCode``.

The Python API page (``reference/python.md``) is rendered from the docstrings by
mkdocstrings when the site is built. Run ``python docs/gen_reference.py`` after changing any
of those; ``tests/test_docs.py`` fails while a page differs from what this writes.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import sys
from pathlib import Path
from typing import Any

import typer

from eventbus_cli import config as config_module
from eventbus_cli.cli.app import load_commands
from eventbus_cli.errors import ErrorCode
from eventbus_cli.protocol.ops import OPS

HERE = Path(__file__).resolve().parent
PAGES = ("cli", "config", "protocol", "errors")
_NOTE = ("<!-- Written by docs/gen_reference.py from the code: edit the code, then run "
         "`python docs/gen_reference.py`. -->\n\n")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def cli_page() -> str:
    """Every command of ``eventbus``, with its arguments and options."""
    root = typer.main.get_command(load_commands())
    lines = [_NOTE, "# Command line\n\n",
             "Every command and option of `eventbus`, as `eventbus COMMAND --help` prints "
             "them. Global options go before the command.\n\n"]

    def walk(command: Any, path: list[str]) -> None:
        if hasattr(command, "commands"):  # a group (typer's own click: no isinstance)
            if path:
                lines.append(_command(command, path))
            for name in sorted(command.commands):
                walk(command.commands[name], [*path, name])
            return
        lines.append(_command(command, path))

    lines.append(_command(root, [], title="Global options"))
    walk(root, [])
    return "".join(lines)


def _command(command: Any, path: list[str], title: str | None = None) -> str:
    heading = title or "eventbus " + " ".join(path)
    out = [f"## {heading}\n\n"]
    text = inspect.cleandoc(command.help or "").split("\n\n")[0]
    if text:
        out.append(" ".join(text.split()) + "\n\n")
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    options = [p for p in command.params if p.param_type_name == "option"
               and p.name != "help" and not p.hidden]
    if path and arguments:
        usage = " ".join((p.name or "").upper() for p in arguments)
        out.append(f"`eventbus {' '.join(path)} {usage}`\n\n")
    rows = []
    for param in arguments:
        rows.append(f"| `{(param.name or '').upper()}` | argument"
                    f"{'' if param.required else ', optional'} | "
                    f"{_cell(getattr(param, 'help', None) or '')} |")
    for option in options:
        names = ", ".join(f"`{name}`" for name in [*option.opts, *option.secondary_opts])
        default = _default(option)
        help_text = _cell(option.help or "")
        rows.append(f"| {names} | option{default} | {help_text} |")
    if rows:
        out.append("| name | kind | what |\n| --- | --- | --- |\n" + "\n".join(rows) + "\n\n")
    return "".join(out)


def _default(option: Any) -> str:
    if option.is_flag or option.default in (None, (), [], False):
        return ""
    value = option.default
    if callable(value):
        return ""
    return f", default `{value}`"


def config_page() -> str:
    """Every key of every table of ``eventbus.toml``."""
    sections: list[tuple[str, Any, str]] = [
        ("daemon", config_module.DaemonConfig, ""),
        ("delivery", config_module.DeliveryConfig, ""),
        ("journal", config_module.JournalConfig, "optional: SQLite, one host"),
        ("backend", config_module.BackendConfig,
         "optional, instead of [journal]: N daemons share one bus on Redis or PostgreSQL"),
        ("metrics", config_module.MetricsConfig, "optional: Prometheus text on /metrics"),
    ]
    ranges = config_module._RANGE
    lines = [_NOTE, "# Config keys\n\n",
             "Every key of `eventbus.toml`, with its type, default and range. Unknown keys, "
             "wrong types and values out of range are errors that name the key and the "
             "file.\n\n"]
    for name, cls, note in sections:
        lines.append(f"## [{name}]\n\n")
        if note:
            lines.append(f"{note[0].upper()}{note[1:]}.\n\n")
        doc = inspect.cleandoc(cls.__doc__ or "")
        if doc:
            lines.append(" ".join(doc.split()) + "\n\n")
        lines.append("| key | type | default | range |\n| --- | --- | --- | --- |\n")
        for field in dataclasses.fields(cls):
            default = getattr(cls(), field.name)
            low_high = ranges.get(field.name)
            span = "" if low_high is None else (
                f"{_number(low_high[0])} to {_number(low_high[1])}")
            lines.append(f"| `{field.name}` | {_cell(str(field.type))} | "
                         f"`{_toml(default)}` | {span} |\n")
        lines.append("\n")
    lines.append("## [listeners.\"NAME\"]\n\nPer-listener options, overriding the listener's "
                 "own and `[delivery]`'s; NAME is the listener's full name "
                 "(`module:function`).\n\n| key | type | default |\n| --- | --- | --- |\n")
    for key in config_module.DeliveryOptions._fields:
        default = getattr(config_module.DeliveryOptions(), key)
        lines.append(f"| `{key}` | {config_module.DeliveryOptions.__annotations__[key]} | "
                     f"`{_toml(default)}` |\n")
    lines.append("\n## [[schedule]]\n\nOne table per schedule: `name` and `event`, and "
                 "`cron` or `every`, one of them.\n\n| key | type |\n| --- | --- |\n")
    for key, kind in config_module._SCHEDULE_KEYS.items():
        kinds = kind if isinstance(kind, tuple) else (kind,)
        lines.append(f"| `{key}` | {' or '.join(k.__name__ for k in kinds)} |\n")
    return "".join(lines)


def _number(value: float) -> str:
    if value == math.inf:
        return "no limit"
    return f"{value:,g}" if value < 1e6 else f"{int(value):,}"


def _toml(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float) and value == math.inf:
        return "inf"
    return str(value)


def protocol_page() -> str:
    """Every op of the wire protocol."""
    lines = [_NOTE, "# Protocol ops\n\n",
             "A request is one JSON object on one line, `{\"id\": 1, \"op\": \"emit\", ...}`; "
             "each gets one reply line with the same `id`: `{\"id\": 1, \"ok\": true, "
             "\"result\": ...}` or `{\"id\": 1, \"ok\": false, \"error\": {\"code\": ..., "
             "\"message\": ...}}` (codes: [errors](errors.md)).\n\n"]
    for op, spec in OPS.items():
        lines.append(f"## `{op}`\n\n")
        writes = " It changes what the store holds: the reply waits for the store."
        lines.append(f"Result: `{spec.returns}`: {_cell(spec.result)}."
                     f"{writes if spec.writes else ''}\n\n")
        if spec.fields:
            lines.append("| field | what |\n| --- | --- |\n")
            for field in spec.fields:
                lines.append(f"| `{field.name}` | {_cell(field.doc)} |\n")
            lines.append("\n")
    return "".join(lines)


def errors_page() -> str:
    """Every ``error.code`` a daemon sends."""
    source = inspect.getsource(ErrorCode)
    lines = [_NOTE, "# Error codes\n\n",
             "The `error.code` of a refused request: what a client can tell apart. In Python "
             "each arrives as its own subclass of `RemoteError` (`eventbus_cli.errors`), and "
             "the message names what was wrong and what to do.\n\n",
             "| code | meaning |\n| --- | --- |\n"]
    for name, value in vars(ErrorCode).items():
        if name.startswith("_") or not isinstance(value, str):
            continue
        found = re.search(rf"^\s*{name} = \"{value}\"(?:\s*#\s*(.*))?$", source, re.MULTILINE)
        meaning = found.group(1) if found and found.group(1) else ""
        lines.append(f"| `{value}` | {_cell(meaning)} |\n")
    return "".join(lines)


def pages() -> dict[str, str]:
    """Each reference page, by file name under ``reference/``."""
    return {"cli": cli_page(), "config": config_page(), "protocol": protocol_page(),
            "errors": errors_page()}


def main() -> None:
    folder = HERE / "reference"
    folder.mkdir(exist_ok=True)
    for name, text in pages().items():
        (folder / f"{name}.md").write_text(text)
        print(f"wrote {folder.relative_to(HERE.parent) / name}.md", file=sys.stderr)


if __name__ == "__main__":
    main()
