"""After voting the page stays live and marks the voter's own pick (issue 19, point 2)."""

import pytest
from django.test import Client

from crowdtick.tests.processes import create_poll
from web.tests.conftest import HTMX
from web.tests.test_browser import site  # noqa: F401 - the running site, a fixture

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_after_a_vote_the_page_holds_a_live_region_marking_the_pick(make_poll, headers):
    poll = make_poll()
    voter = Client()
    response = voter.post(poll.url("vote/"), {"choice": [poll.choice_ids[1]]}, **headers)
    page = (response if headers else voter.get(poll.url())).content.decode()
    assert f'ws-connect="/ws/polls/{poll.slug}/"' in page
    assert 'data-mine="p1"' in page and 'data-pick="p1"' in page
    assert 'name="choice"' not in page


def test_a_browser_that_has_not_voted_gets_the_form_and_no_mark(make_poll):
    poll = make_poll()
    page = Client().get(poll.url()).content.decode()
    assert 'name="choice"' in page and "data-mine" not in page


@pytest.mark.browser
def test_the_voters_page_counts_later_votes_live_and_says_your_choice(site, chromium):  # noqa: F811
    from playwright.sync_api import expect

    slug, _ = create_poll(site, question="Lunch?", choices=["Noodles", "Tacos"])

    voter = chromium.new_context().new_page()
    voter.goto(f"{site}/p/{slug}/")
    voter.get_by_label("Tacos").check()
    voter.get_by_role("button", name="Vote").click()
    voter.wait_for_selector("[data-live-indicator][data-state=live]", timeout=15_000)
    mark = "getComputedStyle(document.querySelector('[data-pick=p1] .bar-text'), '::after').content"
    assert "your choice" in voter.evaluate(mark)
    for _ in range(3):  # three more votes from elsewhere
        other = chromium.new_context().new_page()
        other.goto(f"{site}/p/{slug}/")
        other.get_by_label("Noodles").check()
        other.get_by_role("button", name="Vote").click()
        other.wait_for_selector("text=Thanks, your vote is in.")
        other.context.close()
    expect(voter.locator("#results-total")).to_have_text("4", timeout=10_000)  # no reload
    assert "your choice" in voter.evaluate(mark)
