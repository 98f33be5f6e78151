"""Times in the viewer's zone, with a live countdown where it matters (issue 19, point 5)."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from crowdtick.tests.processes import create_poll
from web.tests.test_browser import site  # noqa: F401 - the running site, a fixture

pytestmark = pytest.mark.browser


def test_the_deadline_counts_down_every_second_instead_of_a_static_closes_in(site, chromium):  # noqa: F811
    closes = (datetime.now(UTC) + timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M")  # no `tz` sent: read as UTC
    slug, _ = create_poll(site, closes_at=closes)  # noqa: F811 - `site` is the fixture's URL
    page = chromium.new_context(timezone_id="Asia/Tokyo").new_page()
    page.goto(f"{site}/p/{slug}/")
    countdown = page.locator(".poll-status time[data-until]")
    first = countdown.inner_text()
    assert re.fullmatch(r"(\d+ h \d\d min|\d+ min \d\d s|\d+ d \d+ h)", first), first
    page.wait_for_timeout(1500)
    assert countdown.inner_text() != first  # it moves


def test_the_owner_page_shows_its_times_in_the_viewers_zone(site, chromium):  # noqa: F811
    slug, manage_path = create_poll(site)
    voter = chromium.new_context().new_page()
    voter.goto(f"{site}/p/{slug}/")
    voter.get_by_label("Databases").check()
    voter.get_by_role("button", name="Vote").click()
    voter.wait_for_selector("text=Thanks, your vote is in.")

    owner = chromium.new_context(timezone_id="Asia/Tokyo").new_page()
    owner.goto(site + manage_path)
    for selector in (".chart-refresh time", ".chart-axis time"):
        time = owner.locator(selector).last
        assert "UTC" not in time.inner_text(), selector
        assert "GMT+0900" in time.get_attribute("title"), selector
