"""DedupeKeys: kept for the window, bounded by count, oldest forgotten first."""

from __future__ import annotations

import time

from eventbus_cli.bus.dedupe import DedupeKeys


def test_a_key_answers_within_the_window_and_not_after() -> None:
    keys = DedupeKeys(window=60, max_keys=10)
    keys.remember("k", {"deliveries": 2})
    assert keys.answer_for("k") == {"deliveries": 2}
    assert keys.answer_for("k", now=time.time() + 61) is None
    assert len(keys) == 0


def test_the_number_of_keys_is_bounded_and_the_oldest_go_first() -> None:
    keys = DedupeKeys(window=60, max_keys=3)
    for n in range(5):
        keys.remember(f"k{n}", {"n": n})
    assert len(keys) == 3
    assert keys.answer_for("k0") is None
    assert keys.answer_for("k1") is None
    assert keys.answer_for("k4") == {"n": 4}
