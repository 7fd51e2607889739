"""The durable stores' one write-behind: rounds noted, written in order, waited on."""

from __future__ import annotations

import anyio
import pytest

from eventbus_cli.stores.writer import WriteBehind

pytestmark = pytest.mark.anyio


async def test_settled_waits_for_the_rounds_this_task_noted_into_and_no_others() -> None:
    rounds = WriteBehind()
    order: list[str] = []

    async def client(name: str) -> None:
        rounds.noted()
        await rounds.settled()
        order.append(name)

    async with anyio.create_task_group() as group:
        group.start_soon(client, "first")
        await rounds.wait_for_work()
        first = rounds.begin()  # the writer takes the first client's round
        group.start_soon(client, "second")  # notes into the next one
        await anyio.wait_all_tasks_blocked()
        assert order == []
        second = rounds.begin()
        rounds.end(first)
        await anyio.wait_all_tasks_blocked()
        assert order == ["first"]  # the second's round is not written yet
        rounds.end(second)
    assert order == ["first", "second"]
    await rounds.settled()  # this task noted nothing: nothing to wait for


async def test_a_round_the_store_did_not_take_raises_its_error_for_whoever_noted_into_it(
) -> None:
    rounds = WriteBehind()
    rounds.noted()
    number = rounds.begin()
    rounds.end(number, RuntimeError("the store refused"))
    with pytest.raises(RuntimeError, match="the store refused"):
        await rounds.settled()
    await rounds.settled()  # answered once: the next request starts afresh
