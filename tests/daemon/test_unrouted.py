"""Unrouted ids: a did-you-mean from the ids listeners name, each named once, logs bounded."""

from __future__ import annotations

import logging

import pytest

from eventbus_cli.daemon.unrouted import LOGGED_PER_MINUTE, Unrouted


def test_a_close_id_is_suggested_once_though_two_listeners_name_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    unrouted = Unrouted(lambda: ["user_created", "user_created", "user_*", "order_paid"])
    with caplog.at_level(logging.WARNING, "eventbus.daemon"):
        assert unrouted.seen("user_creatd") == "user_created"
        assert unrouted.seen("user_creatd") == "user_created"  # remembered, not logged again
        assert unrouted.seen("zzz") is None
    [first, second] = [record.getMessage() for record in caplog.records]
    assert first.endswith("did you mean 'user_created'?")
    assert "`eventbus events` lists the ids" in second


def test_at_most_so_many_ids_are_logged_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    unrouted = Unrouted(lambda: ["user_created"])
    with caplog.at_level(logging.WARNING, "eventbus.daemon"):
        for n in range(LOGGED_PER_MINUTE + 5):
            unrouted.seen(f"made.up.{n}")
    assert len(caplog.records) == LOGGED_PER_MINUTE
