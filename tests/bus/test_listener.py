"""@listener, EventListener, delivery options and routing by exact id and glob."""

from __future__ import annotations

import math
from typing import Any

import pytest

from eventbus_cli import (
    DeliveryOptions,
    EventbusError,
    EventListener,
    InvalidEventIdError,
    ListenerError,
    listener,
)
from eventbus_cli.bus.routing import Router
from eventbus_cli.names import validate_event_id


async def on_user(email: str) -> None:
    pass


def test_listener_returns_event_listener_with_fn_ids_options_name_module() -> None:
    made = listener("user_created", "password_changed", retries=3, backoff=0.25, timeout=10)(
        on_user
    )
    assert isinstance(made, EventListener)
    assert made.func is on_user
    assert made.event_ids == frozenset({"user_created", "password_changed"})
    assert (made.retries, made.backoff, made.timeout) == (3, 0.25, 10)
    assert made.name == f"{__name__}:on_user"
    assert made.module == __name__
    assert made.is_async


def test_defaults_and_sync_functions() -> None:
    @listener("user_deleted")
    def notify(reason: str, **kwargs: Any) -> str:
        return reason

    assert (notify.retries, notify.backoff, notify.timeout) == (0, 0.5, 60.0)
    assert not notify.is_async
    assert notify("gone") == "gone"  # still callable as the plain function


def test_unset_options_take_the_emitters_defaults() -> None:
    made = listener("a", retries=2)(on_user)
    defaults = DeliveryOptions(retries=9, backoff=3.0, timeout=7.0)
    assert made.options_with(defaults) == DeliveryOptions(retries=2, backoff=3.0, timeout=7.0)


def test_custom_name() -> None:
    assert listener("a", name="welcome")(on_user).name == "welcome"


def test_async_callable_object_counts_as_async() -> None:
    class Handler:
        async def __call__(self, email: str) -> None:
            pass

    assert listener("a")(Handler()).is_async


@pytest.mark.parametrize(
    ("args", "kwargs", "needle"),
    [
        ((), {}, "at least one event id"),
        (("",), {}, "invalid event pattern ''"),
        ((42,), {}, "invalid event pattern 42"),
        (("user created",), {}, "invalid event pattern 'user created'"),
        (("x" * 201,), {}, "invalid event pattern"),
        (("a",), {"retries": -1}, "retries must be a whole number"),
        (("a",), {"retries": 1.5}, "retries must be a whole number"),
        (("a",), {"retries": True}, "retries must be a whole number"),
        (("a",), {"backoff": -0.1}, "backoff must be a number >= 0"),
        (("a",), {"backoff": "1"}, "backoff must be a number"),
        (("a",), {"timeout": 0}, "timeout must be a number > 0"),
        (("a",), {"timeout": math.nan}, "timeout must be a number"),
    ],
)
def test_bad_ids_and_options_are_refused_at_decoration(
    args: tuple[Any, ...], kwargs: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ListenerError, match=needle) as caught:
        listener(*args, **kwargs)(on_user)
    assert isinstance(caught.value, EventbusError)


def test_decorating_a_non_callable_is_refused() -> None:
    with pytest.raises(ListenerError, match="decorate a function"):
        listener("user_created")(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):  # ListenerError is a TypeError too, as Python's own would be
        listener("user_created")("not a function")  # type: ignore[arg-type]


def test_stacked_decorators_are_refused() -> None:
    with pytest.raises(ListenerError, match=r"stacked; name every event id in one @listener"):

        @listener("a")
        @listener("b")
        async def twice() -> None: ...


def test_event_id_rule() -> None:
    for good in ("user_created", "billing.invoice_paid", "a:b-c", "x" * 200, "A1"):
        assert validate_event_id(good) == good
    for bad in ("", "x" * 201, "user created", "é", "user*", None, 5):
        with pytest.raises(InvalidEventIdError, match="1 to 200 characters"):
            validate_event_id(bad)


def test_matches_exact_ids_and_globs() -> None:
    made = listener("user_*", "billing.invoice_paid", "order.[ab]")(on_user)
    assert made.matches("user_created")
    assert made.matches("billing.invoice_paid")
    assert made.matches("order.a")
    assert not made.matches("order.c")
    assert not made.matches("billing.invoice_paid_late")
    assert not made.matches("User_created")  # case matters


def test_router_finds_exact_and_pattern_targets_in_order_without_duplicates() -> None:
    router: Router[str] = Router(
        [
            (["user_*"], "audit"),
            (["user_created"], "welcome"),
            (["*"], "everything"),
            (["user_created", "user_*"], "both_ways"),
        ]
    )
    assert router.get("user_created") == ("audit", "welcome", "everything", "both_ways")
    assert router.get("user_deleted") == ("audit", "everything", "both_ways")
    assert router.get("order.paid") == ("everything",)
    assert router.get("user_created") == ("audit", "welcome", "everything", "both_ways")


def test_router_refuses_bad_event_ids() -> None:
    router: Router[str] = Router([(["*"], "all")])
    for bad in ("user*", "", "a b", ["list"]):
        with pytest.raises(InvalidEventIdError):
            router.get(bad)  # type: ignore[arg-type]


def test_delay_doubles_each_retry() -> None:
    options = DeliveryOptions(retries=3, backoff=0.5)
    assert [options.delay_before(attempt) for attempt in (2, 3, 4)] == [0.5, 1.0, 2.0]
