"""Rating scales through the HTML pages: the create form's kind picker, the vote form, the results."""

import pytest
from django.test import Client

from polls import selectors
from polls.models import Ballot, Poll
from web.tests.conftest import HTMX

pytestmark = pytest.mark.django_db

HTMX_CASES = pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
SCALE_FORM = {
    "question": "How was the talk?",
    "kind": "scale",
    "choices": ["", "", ""],  # the hidden choice rows still post, empty
    "scale_min": "0",
    "scale_max": "10",
    "scale_low_label": "Dull",
    "scale_high_label": "Brilliant",
    "results_visibility": "always",
    "dedupe": "browser",
}


def create_scale(client: Client, **fields) -> Poll:
    response = client.post("/polls/new/", SCALE_FORM | fields)
    assert response.status_code == 302, response.content.decode()[:2000]
    return Poll.objects.get()


def test_the_create_form_offers_the_kind_without_javascript():
    page = Client().get("/").content.decode()
    assert 'name="kind" value="choice"' in page and 'name="kind" value="scale"' in page
    assert 'name="scale_min"' in page and 'name="scale_high_label"' in page


def test_the_create_form_makes_a_scale_with_its_range_and_labels():
    poll = create_scale(Client())
    assert (poll.kind, poll.scale_min, poll.scale_max) == ("scale", 0, 10)
    assert (poll.scale_low_label, poll.scale_high_label) == ("Dull", "Brilliant")
    assert [choice.text for choice in poll.choices.order_by("position")] == [str(value) for value in range(11)]


def test_the_create_form_explains_a_bad_range_and_keeps_what_was_typed():
    response = Client().post("/polls/new/", SCALE_FORM | {"scale_min": "7", "scale_max": "3"})
    page = response.content.decode()
    assert response.status_code == 400 and "its top above its bottom" in page
    assert 'value="Brilliant"' in page and not Poll.objects.exists()


def test_a_choice_poll_ignores_the_scale_fields_the_form_still_posts():
    fields = SCALE_FORM | {"kind": "choice", "choices": ["Tea", "Coffee"]}
    poll = create_scale(Client(), **fields)
    assert (poll.kind, poll.scale_min, poll.scale_low_label) == ("choice", None, "")


@HTMX_CASES
def test_a_voter_rates_with_the_form_and_sees_the_average(headers, django_capture_on_commit_callbacks):
    poll = create_scale(Client())
    voter = Client()
    page = voter.get(f"/p/{poll.slug}/").content.decode()
    assert page.count('class="scale-option"') == 11 and "0: Dull" in page and "10: Brilliant" in page
    eight = poll.choices.get(text="8")
    with django_capture_on_commit_callbacks(execute=True):
        response = voter.post(f"/p/{poll.slug}/vote/", {"choice": [eight.id]}, **headers)
    assert response.status_code == (200 if headers else 302)
    assert Ballot.objects.get().choice_mask == 1 << 8
    results = Client().get(f"/p/{poll.slug}/results/").content.decode()
    assert 'id="scale-average">8<' in results and "median <strong>8</strong>" in results


def test_the_big_screen_shows_the_average_in_large_type(django_capture_on_commit_callbacks):
    poll = create_scale(Client())
    with django_capture_on_commit_callbacks(execute=True):
        for value in ("6", "9"):
            Client().post(f"/p/{poll.slug}/vote/", {"choice": [poll.choices.get(text=value).id]})
    kiosk = Client().get(f"/p/{poll.slug}/live/").content.decode()
    assert 'class="scale-average" id="scale-average">7.5<' in kiosk
    assert selectors.poll_results(poll=selectors.poll_get(slug=poll.slug)).scale.median == 7.5
