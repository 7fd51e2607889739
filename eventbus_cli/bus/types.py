"""``json_type``: a test for the values a JSON-typed annotation admits, with its name and
its JSON Schema. Annotations no JSON value can satisfy exactly (a class, a dataclass,
``Any``) get no test: their values are not checked."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, NamedTuple, Union, get_args, get_origin, is_typeddict

__all__ = ("Type", "json_type")


class Type(NamedTuple):
    """What a parameter's annotation admits: ``test(value)``, its name as written, its JSON
    Schema, and the one type whose values always pass (``fast``, tried first), if any."""

    test: Callable[[Any], bool]
    text: str
    schema: dict[str, Any]
    fast: type | None = None


def _anything(value: Any) -> bool:
    return True


# isinstance rather than type(...) is: an in-process emit may pass a StrEnum for a str.
_SCALARS: dict[Any, tuple[Callable[[Any], bool], dict[str, Any]]] = {
    str: (lambda v: isinstance(v, str), {"type": "string"}),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), {"type": "integer"}),
    float: (lambda v: isinstance(v, int | float) and not isinstance(v, bool),
            {"type": "number"}),
    bool: (lambda v: v is True or v is False, {"type": "boolean"}),
    None: (lambda v: v is None, {"type": "null"}),
    type(None): (lambda v: v is None, {"type": "null"}),
}


def json_type(annotation: Any) -> Type | None:
    """The test of ``annotation``, or None if it is not a JSON type (so: unchecked)."""
    test_and_schema = _compile(annotation)
    if test_and_schema is None:
        return None
    test, schema = test_and_schema
    fast = annotation if annotation in (str, int, float, bool) else None
    return Type(test, _text(annotation), schema, fast)


def _compile(tp: Any) -> tuple[Callable[[Any], bool], dict[str, Any]] | None:
    try:
        if tp in _SCALARS:
            return _SCALARS[tp]
    except TypeError:  # an annotation that is not even hashable: not a type
        return None
    origin, args = get_origin(tp), get_args(tp)
    if origin is typing.Annotated:
        return _compile(args[0])
    if origin is Union or origin is types.UnionType:
        members = [_compile(arg) for arg in args]
        if any(member is None for member in members):
            return None  # one member is not checked, so nothing is
        tests = [member[0] for member in members if member is not None]
        return (lambda v: any(test(v) for test in tests),
                {"anyOf": [member[1] for member in members if member is not None]})
    if origin is Literal:
        allowed = args
        return (lambda v: any(type(v) is type(x) and v == x for x in allowed),
                {"enum": list(allowed)})
    if tp is list or origin is list:
        item = _compile(args[0]) if args else None
        if args and item is None:
            return (lambda v: type(v) is list), {"type": "array"}
        each = item[0] if item is not None else _anything
        return ((lambda v: type(v) is list and all(map(each, v))),
                {"type": "array", **({"items": item[1]} if item is not None else {})})
    if tp is tuple or origin is tuple:
        return _tuple(args)
    if tp is dict or origin is dict:
        if args and args[0] is not str:
            return None  # JSON object keys are strings
        value = _compile(args[1]) if args else None
        each = value[0] if value is not None else _anything
        return ((lambda v: type(v) is dict and all(map(each, v.values()))),
                {"type": "object",
                 **({"additionalProperties": value[1]} if value is not None else {})})
    if is_typeddict(tp):
        return _typed_dict(tp)
    return None


def _tuple(args: tuple[Any, ...]) -> tuple[Callable[[Any], bool], dict[str, Any]]:
    if not args or (len(args) == 2 and args[1] is Ellipsis):
        item = _compile(args[0]) if args else None
        each = item[0] if item is not None else _anything
        return ((lambda v: type(v) is list and all(map(each, v))),
                {"type": "array", **({"items": item[1]} if item is not None else {})})
    parts = [_compile(arg) for arg in args]
    tests = [part[0] if part is not None else _anything for part in parts]
    return ((lambda v: type(v) is list and len(v) == len(tests)
             and all(test(x) for test, x in zip(tests, v, strict=True))),
            {"type": "array", "prefixItems": [part[1] if part is not None else {}
                                              for part in parts],
             "minItems": len(parts), "maxItems": len(parts)})


def _typed_dict(tp: Any) -> tuple[Callable[[Any], bool], dict[str, Any]] | None:
    try:
        hints = typing.get_type_hints(tp)
    except Exception:
        return None
    fields = {key: _compile(hint) for key, hint in hints.items()}
    tests = {key: field[0] if field is not None else _anything for key, field in fields.items()}
    required = frozenset(tp.__required_keys__)

    def test(value: Any) -> bool:
        return (type(value) is dict and required <= value.keys()
                and all(key in tests and tests[key](item) for key, item in value.items()))

    return test, {"type": "object", "required": sorted(required), "additionalProperties": False,
                  "properties": {key: field[1] if field is not None else {}
                                 for key, field in fields.items()}}


def _text(tp: Any) -> str:
    """``tp`` as one would write it in the listener's module: ``list[str] | None``."""
    if tp is None or tp is type(None):
        return "None"
    origin, args = get_origin(tp), get_args(tp)
    if origin is typing.Annotated:
        return _text(args[0])
    if origin is Union or origin is types.UnionType:
        return " | ".join(_text(arg) for arg in args)
    if origin is Literal:
        return f"Literal[{', '.join(map(repr, args))}]"
    if origin is not None and args:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(map(_text, args))}]"
    if tp is Ellipsis:
        return "..."
    return getattr(tp, "__name__", None) or inspect.formatannotation(tp)
