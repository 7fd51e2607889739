"""DueHeap: what is due comes out earliest first, pop by pop or in one cut."""

from __future__ import annotations

import random

from eventbus_cli import listener
from eventbus_cli.bus.delivery import Delivery
from eventbus_cli.bus.due import HANDED_OUT, DueHeap
from eventbus_cli.bus.lane import Lane
from eventbus_cli.bus.routing import ListenerSet, Slot
from eventbus_cli.config import DeliveryOptions


def _lane(name: str) -> Lane:
    @listener("e", name=name)
    async def handle() -> None: ...

    slot: Slot = ListenerSet([handle], defaults=DeliveryOptions(), concurrency=1,
                             max_per_listener=None).slots[0]
    return Lane(slot)


def test_due_ones_come_out_in_order_and_the_rest_stay() -> None:
    heap, lanes = DueHeap(), [_lane("a"), _lane("b")]
    times = [random.Random(index).uniform(0, 100) for index in range(500)]
    times_all = list(times)
    for index, when in enumerate(times):
        assert heap.push(when, Delivery(index, "e", (), {}, "x"), lanes[index % 2]) is (
            when == min(times[: index + 1]))
    for now in (0.5, 60.0):  # a few, popped; then hundreds, cut at once
        due = heap.pop_due(now)
        assert [entry[0] for entry in due] == sorted(t for t in times if t <= now)
        times = [t for t in times if t > now]
        assert heap.next_due == min(times)
        assert len(heap) == len(times)
    due_of = dict(enumerate(times_all))
    of_a = heap.take_lane(lanes[0])
    assert {d.id % 2 for d in of_a} == {0}
    assert len(heap) == len(times) - len(of_a)
    assert [due_of[d.id] for d in of_a] == sorted(due_of[d.id] for d in of_a)
    rest = heap.clear()
    assert {d.id % 2 for d in rest} == {1}
    assert not heap
    assert heap.next_due is None
    assert [due_of[d.id] for d in rest] == sorted(due_of[d.id] for d in rest)


def test_a_burst_is_handed_out_a_slice_at_a_time_and_still_counted() -> None:
    heap, lanes = DueHeap(), [_lane("a"), _lane("b")]
    count = 2 * HANDED_OUT + 500
    for index in range(count):
        heap.push(1.0 + index / count, Delivery(index, "e", (), {}, "x"), lanes[index % 2])
    heap.push(50.0, Delivery(count, "e", (), {}, "x"), lanes[0])  # not due
    first = heap.pop_due(10.0)
    assert [entry[1] for entry in first] == list(range(HANDED_OUT))
    assert len(heap) == count + 1 - HANDED_OUT
    assert heap.next_due == first[-1][0] + 1 / count  # the staged rest are due already
    assert not heap.push(0.5, Delivery(count + 1, "e", (), {}, "x"), lanes[1])  # nor earliest
    of_b = heap.take_lane(lanes[1])  # from the staged slice and from the heap
    assert [d.id for d in of_b][:2] == [count + 1, HANDED_OUT + 1]
    rest = heap.pop_due(10.0)
    assert [entry[1] for entry in rest] == list(range(HANDED_OUT, count, 2))
    assert heap.pop_due(10.0) == []
    assert [d.id for d in heap.clear()] == [count]
