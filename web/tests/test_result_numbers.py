"""What the results' numbers say (issue 19, point 1): a multiple-choice ballot counts on several bars,
so the total counts voters and the page says what the shares are of."""

import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_a_multiple_choice_poll_counts_voters_and_says_its_shares_are_of_voters(
    make_poll, django_capture_on_commit_callbacks
):
    poll = make_poll(max_choices=2)
    databases, browsers, _ = poll.choice_ids
    with django_capture_on_commit_callbacks(execute=True):
        Client().post(poll.url("vote/"), {"choice": [databases, browsers]})
    page = Client().get(poll.url("results/")).content.decode()
    total = re.search(r'<p class="results-total"><span id="results-total">(\d+)</span> (\w+)', page)
    assert total.groups() == ("1", "voter")
    assert page.count("100%</strong> · 1 vote") == 2
    assert "a bar's share is of voters, so the shares add up to more than 100%" in page


def test_a_single_choice_poll_still_counts_votes(make_poll, django_capture_on_commit_callbacks):
    poll = make_poll()
    with django_capture_on_commit_callbacks(execute=True):
        Client().post(poll.url("vote/"), {"choice": [poll.choice_ids[0]]})
    page = Client().get(poll.url("results/")).content.decode()
    assert '<span id="results-total">1</span> vote' in page and "share is of voters" not in page
