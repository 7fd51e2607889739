"""The argument check: what binds to a listener's signature, and which values fit its types."""

from __future__ import annotations

import logging
from typing import Any, Literal, Optional, TypedDict, Union

import pytest

from eventbus_cli import SimpleEventEmitter, listener
from eventbus_cli.bus.arguments import arguments_of
from eventbus_cli.errors import BadArgumentsError

pytestmark = pytest.mark.anyio


class Address(TypedDict):
    city: str
    zip: int


def notify_customer_support(reason: str) -> None: ...
def welcome(email: str, name: str = "", **kwargs: Any) -> None: ...
def anything(*args: Any, **kwargs: Any) -> None: ...
def counted(count: int, ratio: float = 1.0, *, flag: bool = False) -> None: ...
def shaped(tags: list[str], scores: dict[str, int], pair: tuple[int, str],
           mode: Literal["a", "b"], maybe: Optional[int], either: Union[int, str],  # noqa: UP007, UP045
           where: Address) -> None: ...
def positional(a: int, /, b: str, *rest: int, **extra: str) -> None: ...
def untyped(thing, other: object, anything: Any, klass: logging.Logger) -> None: ...  # type: ignore[no-untyped-def]


def _problem(fn: Any, *args: Any, **kwargs: Any) -> str | None:
    check = arguments_of(fn.__name__, fn)
    assert check is not None
    return check.problem(args, kwargs)


@pytest.mark.parametrize(("fn", "args", "kwargs", "said"), [
    (notify_customer_support, (), {"email": "x", "reason": "r"},
     " does not take the keyword 'email' (add **kwargs to it, or send only reason)"),
    (notify_customer_support, (), {"email": "x", "why": "r"},
     " does not take the keywords 'email', 'why' (add **kwargs to it, or send none of them);"
     " needs the argument 'reason' (send reason=...)"),
    (notify_customer_support, (), {}, " needs the argument 'reason' (send reason=...)"),
    (notify_customer_support, ("a", "b"), {},
     " takes 1 positional argument but 2 were given (add *args to it, or send at most 1)"),
    (welcome, ("a@b",), {"email": "c@d"},
     " gets 'email' twice, as positional argument 1 and as a keyword (send it once)"),
    (positional, (), {"a": 1, "b": "x"},
     " needs the argument 'a' (send as a positional argument (--arg))"),
])
def test_what_does_not_bind_is_named_with_the_fix(
    fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], said: str,
) -> None:
    assert _problem(fn, *args, **kwargs) == said


@pytest.mark.parametrize(("fn", "args", "kwargs"), [
    (notify_customer_support, (), {"reason": "r"}),
    (notify_customer_support, ("r",), {}),
    (welcome, (), {"email": "x", "reason": "r", "anything": [1]}),
    (welcome, ("x", "n"), {"more": 1}),
    (counted, (3,), {"ratio": 2, "flag": True}),
    (counted, (), {"count": 3, "ratio": 0.5}),
    (positional, (1, "b", 2, 3), {"a": "to **extra", "z": "s"}),
    (untyped, ({"any": "thing"}, 1, None, "not a logger, unchecked"), {}),
])
def test_what_binds_and_fits_is_never_refused(
    fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
) -> None:
    assert _problem(fn, *args, **kwargs) is None


def test_anything_goes_for_args_and_kwargs_so_there_is_nothing_to_check() -> None:
    check = arguments_of("anything", anything)
    assert check is not None
    assert check.trivial


GOOD: dict[str, Any] = {"tags": ["a"], "scores": {"x": 1}, "pair": [1, "a"], "mode": "a",
                        "maybe": None, "either": "s", "where": {"city": "Oslo", "zip": 150}}


@pytest.mark.parametrize(("change", "said"), [
    ({}, None),
    ({"tags": ["a", 1]}, "tags expects list[str], got a list of 2"),
    ({"tags": "a"}, "tags expects list[str], got the string \"a\""),
    ({"scores": {"x": "1"}}, "scores expects dict[str, int], got an object"),
    ({"pair": [1, 2]}, "pair expects tuple[int, str], got a list of 2"),
    ({"mode": "c"}, "mode expects Literal['a', 'b'], got the string \"c\""),
    ({"maybe": "3"}, "maybe expects int | None, got the string \"3\"; send maybe:=3 on the "
                     "command line, maybe=3 from Python"),
    ({"either": 1.5}, "either expects int | str, got the number 1.5; send either=1.5 on the "
                      "command line, either='1.5' from Python"),
    ({"where": {"city": "Oslo"}}, "where expects Address, got an object"),
    ({"where": {"city": "Oslo", "zip": 1, "extra": 1}}, "where expects Address, got an object"),
])
def test_json_typed_values_are_checked_with_advice(change: dict[str, Any], said: str | None,
                                                   ) -> None:
    problem = _problem(shaped, **{**GOOD, **change})
    assert problem == (None if said is None else ": " + said)


@pytest.mark.parametrize(("kwargs", "said"), [
    ({"count": "3"}, 'count expects int, got the string "3"; send count:=3 on the command line, '
                     "count=3 from Python"),
    ({"count": 3.0}, "count expects int, got the number 3.0"),
    ({"count": True}, "count expects int, got the boolean true"),
    ({"count": 3, "ratio": "x"}, 'ratio expects float, got the string "x"'),
    ({"count": 3, "flag": "true"}, 'flag expects bool, got the string "true"; send flag:=true on '
     "the command line, flag=True from Python"),
])
def test_numbers_and_booleans_are_told_apart(kwargs: dict[str, Any], said: str) -> None:
    assert _problem(counted, **kwargs) == ": " + said


def test_a_positional_value_gets_arg_advice_and_star_args_are_checked() -> None:
    assert _problem(positional, "1", "b") == (
        ': a expects int, got the string "1"; send --arg :=1 on the command line, 1 from Python')
    assert _problem(positional, 1, "b", 2, "x") == (
        ': rest[1] expects int, got the string "x"')
    assert _problem(positional, 1, "b", z=3) == (
        ": z expects str, got the number 3; send z=3 on the command line, z='3' from Python")


def test_string_annotations_resolve_in_the_listeners_module() -> None:
    namespace: dict[str, Any] = {}
    exec("from __future__ import annotations\n"
         "def f(count: int, tags: list[str]) -> None: ...\n", namespace)
    check = arguments_of("f", namespace["f"])
    assert check is not None
    assert check.text == "(count: int, tags: list[str])"
    assert check.problem((), {"count": "2", "tags": []}) == (
        ': count expects int, got the string "2"; send count:=2 on the command line, count=2 '
        "from Python")


def test_an_annotation_that_cannot_be_resolved_is_warned_of_once_and_left_unchecked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    namespace: dict[str, Any] = {}
    exec("from __future__ import annotations\n"
         "def f(user: Missing, count: int) -> None: ...\n", namespace)
    with caplog.at_level(logging.WARNING, "eventbus.emitter"):
        check = arguments_of("f", namespace["f"])
    assert check is not None
    [record] = caplog.records
    assert "listener f: the annotation 'Missing' of 'user' cannot be resolved" in record.message
    assert check.problem((), {"user": object(), "count": 1}) is None
    assert check.problem((), {"user": 1, "count": "1"}) is not None


def test_the_schema_is_what_binds() -> None:
    check = arguments_of("counted", counted)
    assert check is not None
    kwargs = check.schema()["properties"]["kwargs"]
    assert kwargs["required"] == ["count"]
    assert kwargs["properties"]["count"] == {"type": "integer"}
    assert kwargs["properties"]["flag"] == {"type": "boolean"}
    assert kwargs["additionalProperties"] is False


async def test_the_emitter_refuses_before_queuing_and_off_or_warn_let_it_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []

    @listener("user_deleted")
    async def strict(reason: str) -> None:
        ran.append("strict")

    @listener("user_deleted", check="warn")
    async def lenient(reason: str) -> None:
        ran.append("lenient")

    async with SimpleEventEmitter([strict, lenient]) as emitter:
        with pytest.raises(BadArgumentsError) as caught:
            emitter.emit("user_deleted", email="x")
        assert str(caught.value) == (
            f"user_deleted: {strict.name}(reason: str) does not take the keyword 'email' (add "
            "**kwargs to it, or send none of them); needs the argument 'reason' (send "
            "reason=...)")
        assert emitter.stats().pending == 0
        with pytest.raises(BadArgumentsError):
            await emitter.aemit("user_deleted", email="x")
        emitter.emit("user_deleted", reason="r")
        assert emitter.put("user_deleted", (), {"email": "x"}, check=False)
    assert sorted(ran) == ["lenient", "strict"]
    assert [d.listener for d in emitter.failed] == [strict.name, lenient.name]
    assert any('check = "warn": queued anyway' in r.message for r in caplog.records)
