"""The browser's own limits (issue 19, point 3): what the server would refuse cannot be ticked or added,
and a refused vote keeps what the voter ticked."""

import pytest
from django.test import Client

from crowdtick.tests.processes import create_poll
from polls.models import MAX_CHOICES
from web.tests.test_browser import site  # noqa: F401 - the running site, a fixture

pytestmark = pytest.mark.django_db


def test_a_refused_vote_keeps_every_tick(make_poll):
    poll = make_poll(max_choices=2)
    page = Client().post(poll.url("vote/"), {"choice": poll.choice_ids}).content.decode()  # 3 ticks on "up to 2"
    assert "Pick at most 2 choices." in page
    assert page.count("checked") == 3 and 'data-max-choices="2"' in page


def test_without_javascript_add_a_choice_stops_at_the_maximum():
    rows = [f"Choice {n}" for n in range(1, MAX_CHOICES + 1)]
    page = Client().post("/polls/new/", {"question": "Q?", "choices": rows, "add_choice": "1"}).content.decode()
    assert page.count('name="choices"') == MAX_CHOICES
    assert f"A poll can have at most {MAX_CHOICES} choices." in page
    assert "data-add-choice" in page and 'data-max-rows="20" disabled' in page


@pytest.mark.browser
def test_in_the_browser_a_third_box_waits_and_the_21st_row_never_comes(site, chromium):  # noqa: F811
    choices = {"question": "Which two?", "choices": ["A", "B", "C"], "allow_multiple": "on", "max_choices": "2"}
    slug, _ = create_poll(site, **choices)

    page = chromium.new_context().new_page()
    page.goto(f"{site}/p/{slug}/")
    page.get_by_label("A", exact=True).check()
    assert not page.get_by_label("C", exact=True).is_disabled()
    page.get_by_label("B", exact=True).check()
    assert page.get_by_label("C", exact=True).is_disabled()  # the limit: two ticks
    page.get_by_label("A", exact=True).uncheck()
    assert not page.get_by_label("C", exact=True).is_disabled()

    page.goto(f"{site}/")
    add = page.get_by_role("button", name="+ Add a choice")
    for _ in range(MAX_CHOICES - 3):  # the form starts with 3 rows
        add.click()
    from playwright.sync_api import expect

    expect(page.locator("#choice-list input")).to_have_count(MAX_CHOICES)
    expect(add).to_be_disabled()
