"""Values for ``eventbus emit`` from the command line, in the conventions HTTPie and RQ use.

``text`` is the string ``"text"``; ``:=JSON`` is a JSON value; ``@path`` is the text of a file;
``:=@path`` is the JSON in a file. ``--kw`` puts ``key`` in front: ``key=text``, ``key:=3``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ..errors import ArgumentError
from ..protocol.codec import MAX_DELAY

__all__ = ("parse_arg", "parse_kw")


def parse_arg(text: str) -> Any:
    """The value of one ``--arg``."""
    if text.startswith(":="):
        return _json("--arg", text, text[2:])
    return _string("--arg", text, text)


def parse_kw(text: str) -> tuple[str, Any]:
    """The key and value of one ``--kw``."""
    key, equals, value = text.partition("=")
    if not equals:
        problem = "expected KEY=VALUE, or KEY:=JSON for a number, true, a list or an object"
        raise ArgumentError("--kw", text, problem)
    if key.endswith(":"):
        key = key[:-1]
        _check_key(text, key)
        return key, _json("--kw", text, value)
    _check_key(text, key)
    return key, _string("--kw", text, value)


def _check_key(text: str, key: str) -> None:
    # Any key an events file or the protocol takes: one that is not a Python name reaches
    # a listener's **kwargs only, as in `emit("e", **{"a-b": 1})`.
    if not key:
        raise ArgumentError("--kw", text, "the key before '=' is empty; give KEY=VALUE")


def _string(option: str, text: str, value: str) -> str:
    return _read(option, text, value[1:]) if value.startswith("@") else value


def _json(option: str, text: str, value: str) -> Any:
    source = _read(option, text, value[1:]) if value.startswith("@") else value
    try:
        return json.loads(source)
    except ValueError as exc:
        problem = f"not valid JSON after ':=' ({exc}); for text, leave out the colon"
        raise ArgumentError(option, text, problem) from None


def _read(option: str, text: str, path: str) -> str:
    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ArgumentError(option, text, f"cannot read the file {path!r}: {exc}") from None


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def duration(text: str, option: str, what: str = "duration") -> float:
    """``90s``, ``10m``, ``2h``, ``1d`` (or ``1.5h``) in seconds; a usage error naming
    ``option`` and ``what`` it is otherwise."""
    number, unit = text[:-1], text[-1:]
    try:
        seconds = (float(number) * _UNITS[unit] if unit in _UNITS and number.isascii()
                   and number else -1.0)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= MAX_DELAY:
        raise typer.BadParameter(f"{text!r} is not a {what}: give a number and a unit, s, "
                                 "m, h or d (90s, 10m, 2h, 1d), at most a year",
                                 param_hint=option)
    return seconds
