"""``Arguments``: whether an emit's values bind to a listener's parameters, checked at emit.

Compiled once per listener from its signature: which parameters it takes, which it needs,
and, for parameters annotated with a type a JSON value can have, a test of the value. What
binds depends only on the emit's shape (how many positionals, which keywords), so that part
is worked out once per shape and kept; only the values of typed parameters are looked at on
each emit.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable
from inspect import Parameter
from typing import Any

from .types import Type, json_type

__all__ = ("Arguments", "arguments_of")

logger = logging.getLogger("eventbus.emitter")

_POSITIONAL = (Parameter.POSITIONAL_ONLY, Parameter.POSITIONAL_OR_KEYWORD)
_SHAPES_KEPT = 512  # argument shapes remembered per listener; more start the memory afresh

# A plan for one shape: a problem (it does not bind), or the typed values to test, each as
# (by keyword?, index or key, parameter name, its type).
_Plan = str | tuple[tuple[bool, Any, str, Type], ...]


class Arguments:
    """What one listener's function takes; :meth:`problem` says why an emit does not fit."""

    def __init__(self, name: str, signature: inspect.Signature, types: dict[str, Type]) -> None:
        self.name = name
        params = list(signature.parameters.values())
        self.text = str(signature.replace(return_annotation=inspect.Signature.empty))
        """The signature as written, ``(email: str, **kwargs)``, for messages and listings."""
        self.parameters = params
        self.types = types
        self._positional = [p for p in params if p.kind in _POSITIONAL]
        self._by_keyword = {p.name: p for p in params
                            if p.kind in (Parameter.POSITIONAL_OR_KEYWORD, Parameter.KEYWORD_ONLY)}
        self._star = next((p for p in params if p.kind is Parameter.VAR_POSITIONAL), None)
        self._stars = next((p for p in params if p.kind is Parameter.VAR_KEYWORD), None)
        self._plans: dict[tuple[Any, ...], _Plan] = {}
        self.accepts: Callable[[Any, dict[str, Any]], bool] = _never
        """A quick yes for emits of the shape last found to fit (one call, no loop): False
        only means "ask :meth:`problem`"."""
        self.trivial = (self._star is not None and self._stars is not None and not types
                        and all(p.default is not Parameter.empty or p.kind in (
                            Parameter.VAR_POSITIONAL, Parameter.VAR_KEYWORD) for p in params))
        """Whether it takes any arguments at all, untyped: then there is nothing to check."""

    def problem(self, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> str | None:
        """What does not fit, as it reads after the listener's name and signature, or None."""
        plan = self._plans.get((len(args), *kwargs))
        if plan is None:
            if len(self._plans) >= _SHAPES_KEPT:
                self._plans.clear()
            plan = self._plans[(len(args), *kwargs)] = self._plan(len(args), list(kwargs))
        if isinstance(plan, str):
            return plan
        for by_keyword, where, name, kind in plan:
            value = kwargs[where] if by_keyword else args[where]
            if type(value) is not kind.fast and not kind.test(value):
                return ": " + _type_problem(name, kind, value, by_keyword, where)
        self.accepts = _quick_yes(len(args), list(kwargs), plan)
        return None

    def _plan(self, count: int, keywords: list[str]) -> _Plan:
        problems: list[str] = []
        positional = self._positional
        if count > len(positional) and self._star is None:
            takes = len(positional)
            problems.append(
                f" takes {takes} positional argument{'s' if takes != 1 else ''} but {count} "
                f"{'were' if count != 1 else 'was'} given (add *args to it, or send at most "
                f"{takes})")
        bound = {p.name: i for i, p in enumerate(positional[:count])}
        unexpected = []
        twice = []
        tests: list[tuple[bool, Any, str, Type]] = []
        for key in keywords:
            if key in self._by_keyword:  # a parameter that may be named
                if key in bound:
                    twice.append(key)
                elif (kind := self.types.get(key)) is not None:
                    tests.append((True, key, key, kind))
            elif self._stars is None:
                unexpected.append(key)
            elif (kind := self.types.get(self._stars.name)) is not None:
                tests.append((True, key, key, kind))
        if unexpected:
            taken = [key for key in keywords if key not in unexpected]
            which = ("the keyword " + repr(unexpected[0]) if len(unexpected) == 1
                     else "the keywords " + ", ".join(map(repr, unexpected)))
            only = f"send only {', '.join(taken)}" if taken else "send none of them"
            problems.append(f" does not take {which} (add **kwargs to it, or {only})")
        for key in twice:
            problems.append(f" gets {key!r} twice, as positional argument {bound[key] + 1} "
                            "and as a keyword (send it once)")
        missing = [p for p in self.parameters if p.default is Parameter.empty
                   and p.kind not in (Parameter.VAR_POSITIONAL, Parameter.VAR_KEYWORD)
                   and p.name not in bound and (p.kind is Parameter.POSITIONAL_ONLY
                                                or p.name not in keywords)]
        for param in missing:
            how = ("as a positional argument (--arg)" if param.kind is Parameter.POSITIONAL_ONLY
                   else f"{param.name}=...")
            problems.append(f" needs the argument {param.name!r} (send {how})")
        if problems:
            return ";".join(problems)
        for index, param in enumerate(positional[:count]):
            if (kind := self.types.get(param.name)) is not None:
                tests.append((False, index, param.name, kind))
        if self._star is not None and (kind := self.types.get(self._star.name)) is not None:
            for index in range(len(positional), count):
                tests.append((False, index, f"{self._star.name}[{index - len(positional)}]",
                              kind))
        return tuple(tests)

    def schema(self) -> dict[str, Any]:
        """A JSON Schema of the ``{"args", "kwargs"}`` this listener takes."""
        kwargs: dict[str, Any] = {
            name: self.types[name].schema if name in self.types else {}
            for name in self._by_keyword}
        required = [p.name for p in self.parameters if p.default is Parameter.empty
                    and p.kind in (Parameter.POSITIONAL_OR_KEYWORD, Parameter.KEYWORD_ONLY)]
        extra: Any = False
        if self._stars is not None:
            kind = self.types.get(self._stars.name)
            extra = kind.schema if kind is not None else True
        positional = [p for p in self._positional if p.kind is Parameter.POSITIONAL_ONLY]
        args: dict[str, Any] = {"type": "array", "maxItems": len(positional)}
        if positional:
            args["prefixItems"] = [self.types[p.name].schema if p.name in self.types else {}
                                   for p in positional]
            args["minItems"] = sum(p.default is Parameter.empty for p in positional)
        if self._star is not None:
            del args["maxItems"]
        return {
            "type": "object",
            "properties": {
                "args": args,
                "kwargs": {"type": "object", "properties": kwargs, "required": required,
                           "additionalProperties": extra},
            },
        }

    def describe(self) -> list[dict[str, Any]]:
        """Each parameter: its name, kind, type (as written; null if none or unchecked),
        and whether it must be given."""
        return [{"name": p.name, "kind": p.kind.name.lower(),
                 "type": self.types[p.name].text if p.name in self.types else None,
                 "required": p.default is Parameter.empty
                 and p.kind not in (Parameter.VAR_POSITIONAL, Parameter.VAR_KEYWORD)}
                for p in self.parameters]


def arguments_of(name: str, fn: Callable[..., Any]) -> Arguments | None:
    """The compiled check of ``fn``, or None when its signature cannot be read; annotations
    written as strings are resolved in ``fn``'s module (one that cannot be is logged, and its
    parameter's values are not checked)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    types: dict[str, Type] = {}
    globalns = getattr(inspect.unwrap(fn), "__globals__", {})
    for param in signature.parameters.values():
        annotation = param.annotation
        if annotation is Parameter.empty:
            continue
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, globalns)  # the listener's own, in its module
            except Exception as exc:
                logger.warning("listener %s: the annotation %r of %r cannot be resolved (%s: "
                               "%s); that parameter's values are not checked", name,
                               param.annotation, param.name, type(exc).__name__, exc)
                continue
            signature = signature.replace(parameters=[
                p.replace(annotation=annotation) if p is param else p
                for p in signature.parameters.values()])
        kind = json_type(annotation)
        if kind is not None:
            types[param.name] = kind
    return Arguments(name, signature, types)


def _never(args: Any, kwargs: dict[str, Any]) -> bool:
    return False


def _quick_yes(count: int, keywords: list[str], plan: tuple[tuple[bool, Any, str, Type], ...],
               ) -> Callable[[Any, dict[str, Any]], bool]:
    """A function that says yes to emits of exactly this shape whose values pass the plan's
    tests: written out as one expression, so that the common emit costs one call."""
    tested = {where for by_keyword, where, _, _ in plan if by_keyword}
    terms = [f"{key!r} in kwargs" for key in keywords if key not in tested]
    names: dict[str, Any] = {}
    for index, (by_keyword, where, _, kind) in enumerate(plan):
        value = f"kwargs[{where!r}]" if by_keyword else f"args[{where}]"
        names[f"test{index}"] = kind.test
        if kind.fast is not None:
            names[f"fast{index}"] = kind.fast
            terms.append(f"(type({value}) is fast{index} or test{index}({value}))")
        else:
            terms.append(f"test{index}({value})")
    # What it uses are defaults of the function, so locals: quicker to read than globals.
    names.update(len=len, type=type)
    defaults = ", ".join(f"{name}={name}" for name in names)
    code = (f"def accepts(args, kwargs, {defaults}):\n"
            f"    if len(args) != {count} or len(kwargs) != {len(keywords)}:\n"
            "        return False\n"
            "    try:\n"
            f"        return {' and '.join(terms) or 'True'}\n"
            "    except KeyError:\n"  # a keyword of another shape
            "        return False\n")
    exec(code, names)  # made from the listener's signature, its keys repr()'d
    accepts: Callable[[Any, dict[str, Any]], bool] = names["accepts"]
    return accepts


def _type_problem(name: str, kind: Type, value: Any, by_keyword: bool, where: Any) -> str:
    said = f"{name} expects {kind.text}, got {_described(value)}"
    fix = _fix(kind, value)
    if fix is None:
        return said
    command_line = f"{where}{fix}" if by_keyword else f"--arg {fix.removeprefix('=')}"
    python = repr(json.loads(fix[2:]) if fix.startswith(":=") else fix[1:])
    in_python = f"{where}={python}" if by_keyword else python
    return f"{said}; send {command_line} on the command line, {in_python} from Python"


def _fix(kind: Type, value: Any) -> str | None:
    """How to send ``value`` so that it fits: as JSON (``:=3``) or as text (``=3``)."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return f":={value}" if kind.test(parsed) else None
    text = value if isinstance(value, str) else json.dumps(value)
    return f"={text}" if kind.test(text) else None


def _described(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {json.dumps(value)}"
    if isinstance(value, int | float):
        return f"the number {json.dumps(value)}"
    if isinstance(value, str):
        shown = json.dumps(value, ensure_ascii=False)
        return f"the string {shown if len(shown) <= 40 else shown[:37] + '...'}"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return "an object" if isinstance(value, dict) else f"a {type(value).__name__}"
