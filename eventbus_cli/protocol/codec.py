"""The protocol's codec: lines in and out, JSON with the project's rules. Bytes only, no I/O.

Every line is one JSON object in UTF-8 ending in a newline. A lone surrogate (valid JSON, not
valid UTF-8) is written as its JSON escape, so any line decodes back to what was sent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, NamedTuple

from ..errors import ProtocolError

__all__ = (
    "DEFAULT_WAIT",
    "MAX_DELAY",
    "MAX_DEPTH",
    "LineSplitter",
    "Reply",
    "decode_reply",
    "encode_error",
    "encode_line",
    "encode_request",
    "encode_result",
    "loads",
)

DEFAULT_WAIT = 60.0
"""Seconds an ``emit`` with ``"wait": true`` waits for its deliveries unless it says."""
MAX_DEPTH = 64
"""How deep the lists and objects inside an event's args and kwargs may nest."""
TOO_DEEP = f"values nest more than {MAX_DEPTH} deep; send flatter ones"


def _plain(value: Any) -> Any:
    """What the encoder writes for a value JSON has no form for: a result Struct as its
    document; anything else as its repr."""
    if hasattr(type(value), "__struct_fields__"):  # msgspec, imported only once one comes
        from msgspec import to_builtins

        return to_builtins(value, enc_hook=repr)
    return repr(value)


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_plain)
# The error codes of the codec's own failures; the rest are in protocol.ErrorCode.
BAD_JSON, TOO_LARGE, INTERNAL = "bad_json", "too_large", "internal"
MAX_DELAY = 366 * 86_400.0
"""The furthest ahead an emit may be scheduled, in seconds: a year."""


class Reply(NamedTuple):
    """A decoded reply: ``result`` when ``ok``, else ``code`` and ``message`` (and ``details``)."""

    id: int | str | None
    ok: bool
    result: Any = None
    code: str = ""
    message: str = ""
    details: dict[str, Any] | None = None


class LineSplitter:
    """Cuts a byte stream into lines, refusing any line longer than ``max_bytes``.

    The start of an unfinished line is kept as a list of chunks and joined once, when its
    newline comes: a line dribbled in a byte at a time costs time in its length, not in its
    length squared.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.too_large = False
        """Set once a line passes ``max_bytes``: answer the lines returned, then close."""
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> list[bytes]:
        """The complete lines (without their newline) that ``data`` finishes.

        Once a line passes ``max_bytes`` it returns only the lines before it and sets
        :attr:`too_large`; the stream cannot be trusted after that, so it should be closed.
        """
        if b"\n" not in data:
            self._parts.append(data)
            self._size += len(data)
            if self._size > self.max_bytes:
                self.too_large = True
            return []
        if self._parts:
            self._parts.append(data)
            data = b"".join(self._parts)
        lines = data.split(b"\n")
        rest = lines.pop()
        self._parts, self._size = ([rest] if rest else []), len(rest)
        limit = self.max_bytes
        for index, line in enumerate(lines):
            if len(line) > limit:
                self.too_large = True
                return lines[:index]
        if self._size > limit:
            self.too_large = True
        return lines

    @property
    def pending(self) -> bytes:
        """Bytes received after the last complete line."""
        return b"".join(self._parts)

    def too_large_error(self) -> ProtocolError:
        return ProtocolError(
            TOO_LARGE,
            f"a message is over max_message_bytes ({self.max_bytes} bytes), so the connection "
            "is closed; send smaller messages (emit_many in smaller batches) or raise the limit",
        )


def loads(line: bytes | str) -> Any:
    """Parse one line of JSON, refusing NaN and infinities; :class:`ProtocolError` (bad_json)
    names what is wrong.

    msgspec parses it where it can (several times faster, exact with big integers); what it
    refuses goes to the standard library, which also takes what JSON allows and msgspec
    does not (a lone surrogate written as an escape), so both agree on what is valid.
    """
    global _fast
    if _fast is None:
        _fast = _fast_decoder()
    try:
        value = _fast(line)
        if value is not _REFUSED:
            return value
        return json.loads(line, parse_constant=_refuse_constant, parse_float=_finite)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(BAD_JSON, f"not valid JSON: {exc}") from None
    except RecursionError:
        raise ProtocolError(BAD_JSON, TOO_DEEP) from None


_REFUSED = object()
_fast: Callable[[bytes | str], Any] | None = None


def _fast_decoder() -> Callable[[bytes | str], Any]:
    """msgspec's decoder, imported on first use (the emit path never needs it), answering
    :data:`_REFUSED` for what it does not take; without msgspec, every line is refused."""
    try:
        import msgspec.json
    except ImportError:  # pragma: no cover - msgspec is a dependency; this keeps it optional
        return lambda line: _REFUSED
    decode, error = msgspec.json.Decoder().decode, msgspec.DecodeError

    def fast(line: bytes | str) -> Any:
        try:
            return decode(line)
        except error:
            return _REFUSED

    return fast


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; send a finite number or null")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is too large for a number; send a smaller one")
    return value


def encode_result(request_id: object, result: Any) -> bytes:
    """The reply line for a request that succeeded: ``result`` is a Struct of
    :mod:`.results` (or a plain document)."""
    return _utf8(_ENCODER.encode({"id": request_id, "ok": True, "result": result}))


def encode_error(request_id: object, code: str, message: str, **details: Any) -> bytes:
    """The reply line for a request that failed; ``details`` go into the error object."""
    error = {"code": code, "message": message, **details}
    return _utf8(_ENCODER.encode({"id": request_id, "ok": False, "error": error}))


def encode_request(request_id: int | str, op: str, **fields: Any) -> bytes:
    """A request line, as a client sends it."""
    return _utf8(_ENCODER.encode({"id": request_id, "op": op, **fields}))


def encode_line(document: Any) -> bytes:
    """``document`` as one JSON line (a stream record, say)."""
    return _utf8(_ENCODER.encode(document))


def _utf8(text: str) -> bytes:
    # JSON may carry lone surrogates ("\ud800"), which UTF-8 cannot: write them as the
    # same JSON escape, so the line stays valid and decodes back to what was sent.
    return (text + "\n").encode("utf-8", "backslashreplace")


def decode_reply(line: bytes) -> Reply:
    """Parse a reply line; raise :class:`ProtocolError` if it is not one."""
    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        problem = f"the daemon sent a line that is not JSON: {exc}"
        raise ProtocolError(BAD_JSON, problem) from None
    if not isinstance(data, dict) or not isinstance(data.get("ok"), bool):
        raise ProtocolError(BAD_JSON, f"the daemon sent something not a reply: {data!r}")
    if data["ok"]:
        return Reply(data.get("id"), True, data.get("result"))
    error = data.get("error")
    if not isinstance(error, dict):
        error = {}
    details = {k: v for k, v in error.items() if k not in ("code", "message")}
    return Reply(data.get("id"), False, None, str(error.get("code", INTERNAL)),
                 str(error.get("message", "the daemon gave no message")), details)
