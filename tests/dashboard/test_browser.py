"""The dashboard in a real browser: failures show with their traceback, Retry runs them again
on fixed code, counters move without a reload, a purge asks first, actions need the token."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.conftest import TOKEN, Served

pytestmark = pytest.mark.timeout(120)

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


def _failed(served: Served, *events: tuple[str, dict[str, Any]]) -> None:
    with served.client() as client:
        for event, kwargs in events:
            client.emit(event, **kwargs)
        assert client.join(30)


def _log_in(page: Any, served: Served) -> None:
    page.goto(f"{served.url}/login")
    page.get_by_label("Token").fill(TOKEN)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("status")).to_contain_text("Logged in")


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def test_a_failure_shows_its_traceback_and_retry_runs_it_on_fixed_code(
        served: Served, page: Any) -> None:
    page.goto(served.url + "/")
    counter = page.locator('[data-count="failed_list"]')
    expect(counter).to_have_text("0")
    _failed(served, ("webhook", {"url": "https://hooks.example.com/a"}))
    expect(counter).to_have_text("1")  # live: no reload
    row = page.locator('tr[data-listener="recorder:webhook"] [data-field="failed"]')
    expect(row).to_have_text("1")

    page.get_by_role("link", name="Failed").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    page.screenshot(path=str(IMAGES / "dashboard-failed.png"))
    page.get_by_role("link", name=re.compile(r"^#\d+$")).click()
    expect(page.locator(".traceback")).to_contain_text(
        "ConnectionError: target https://hooks.example.com/a is down")

    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("needs the dashboard's token")

    _log_in(page, served)
    served.daemon.out.with_name("fixed").touch()
    page.goto(served.url + "/failed")
    page.get_by_role("link", name=re.compile(r"^#\d+$")).click()
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("status")).to_contain_text("queued again")
    with served.client() as client:
        assert client.join(30)
    assert {"webhook": "https://hooks.example.com/a"} in served.daemon.written()
    page.goto(served.url + "/")
    expect(counter).to_have_text("0")
    page.goto(served.url + "/")
    page.screenshot(path=str(IMAGES / "dashboard-overview.png"))


def test_the_failed_list_filters_and_retries_what_matches(served: Served, page: Any) -> None:
    _failed(served, *[("webhook", {"url": f"https://h/{n}"}) for n in range(3)],
            ("report.daily", {}), ("report.weekly", {}))
    _log_in(page, served)
    page.goto(served.url + "/failed")
    expect(page.locator("tbody tr")).to_have_count(5)
    page.get_by_label("Error text").fill("TEMPLATE")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr")).to_have_count(2)
    page.get_by_label("Event").fill("report.d*")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody")).to_contain_text("report.daily")

    page.goto(served.url + "/failed?listener=recorder%3Awebhook")
    served.daemon.out.with_name("fixed").touch()
    page.get_by_label("Select delivery", exact=False).first.check()
    page.get_by_role("button", name="Retry selected").click()
    expect(page.get_by_role("status")).to_contain_text("Queued 1 delivery again")
    page.get_by_role("button", name="Retry all matching").click()
    expect(page.get_by_role("status")).to_contain_text("Queued 2 deliveries again")
    with served.client() as client:
        assert client.join(30)
        assert {d.event for d in client.deliveries("failed")} == {"report.daily",
                                                                  "report.weekly"}


def test_a_purge_asks_first(served: Served, page: Any) -> None:
    _failed(served, ("report.a", {}), ("report.b", {}))
    _log_in(page, served)
    page.goto(served.url + "/failed")
    page.get_by_role("link", name="Purge the failed list…").click()
    expect(page.get_by_role("heading", name="Purge the failed list?")).to_be_visible()
    page.get_by_role("link", name="Cancel").click()
    expect(page.locator("tbody tr")).to_have_count(2)
    page.get_by_role("link", name="Purge the failed list…").click()
    other = page.context.new_page()  # someone else, about to purge too
    other.goto(page.url)
    page.get_by_role("button", name="Purge 2 failed deliveries").click()
    expect(page.get_by_role("status")).to_contain_text("Purged 2 failed deliveries")
    expect(page.locator("tbody tr")).to_have_count(1)  # the "None." row
    other.get_by_role("button", name="Purge 2 failed deliveries").click()
    expect(other.get_by_role("status")).to_contain_text("Nothing to purge")


def test_the_pages_show_schedules_listeners_catalog_and_the_tail(
        served: Served, page: Any) -> None:
    _log_in(page, served)
    page.goto(served.url + "/schedules")
    row = page.locator('tr[data-schedule="hourly"]')
    expect(row).to_contain_text("every 1h")
    row.get_by_role("button", name="Run hourly now").click()
    expect(page.get_by_role("status")).to_contain_text("Schedule hourly fired")

    page.goto(served.url + "/listeners")
    row = page.locator('tr[data-listener="recorder:webhook"]')
    expect(row).to_contain_text("(url: str)")
    row.get_by_role("button", name="Pause recorder:webhook").click()
    expect(page.get_by_role("status")).to_contain_text("Paused recorder:webhook")
    expect(row.locator("[data-paused]")).to_be_visible()
    with served.client() as client:
        assert list(client.queue().paused) == ["recorder:webhook"]
    row.get_by_role("button", name="Resume recorder:webhook").click()
    expect(page.get_by_role("status")).to_contain_text("Resumed recorder:webhook")
    with served.client() as client:
        assert client.queue().paused == {}

    page.goto(served.url + "/events")
    expect(page.locator('[data-event="user_created"] pre')).to_contain_text('"email"',
                                                                          use_inner_text=False)
    page.get_by_label("Event id").fill("user_created")
    page.get_by_label("kwargs (a JSON object)").fill('{"mail": "x"}')
    page.get_by_role("button", name="Dry run").click()
    expect(page.locator("[data-outcome]")).to_contain_text("email")
    page.get_by_label("kwargs (a JSON object)").fill('{"email": "ada@example.com"}')
    page.get_by_role("button", name="Emit").click()
    expect(page.locator("[data-outcome]")).to_contain_text("Emitted: 1 delivery queued")

    page.goto(served.url + "/tail?pattern=user_*")
    expect(page.locator("table.tail")).to_have_attribute("data-following", "yes")
    with served.client() as client:
        client.emit("report.daily")  # not followed
        client.emit("user_created", email="grace@example.com")
    expect(page.locator('table.tail tbody tr[data-type="ok"]').first).to_contain_text(
        "user_created")
    expect(page.locator("table.tail tbody")).not_to_contain_text("report.daily")


def test_a_narrow_screen_scrolls_tables_not_the_page(served: Served, browser: Any) -> None:
    _failed(served, ("webhook", {"url": "https://a-rather-long-host-name.example.com/" * 3}))
    context = browser.new_context(viewport={"width": 375, "height": 800})
    page = context.new_page()
    for path in ("/", "/failed", "/listeners", "/events"):
        page.goto(served.url + path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 375, path
    context.close()


def test_a_stopped_daemon_is_a_page_that_says_so(served: Served, page: Any) -> None:
    served.daemon.stop()
    response = page.goto(served.url + "/failed")
    assert response.status == 503
    expect(page.get_by_role("alert")).to_contain_text("no socket file")
    response = page.goto(served.url + "/deliveries/12345")
    assert response.status == 503
