"""Word clouds through the HTML pages: the create form, the vote form with and without HTMX, the
cloud on every page, the owner's moderation, CSV, and events typed as text."""

import csv
import io
import re

import pytest
from django.test import Client, TestCase

from polls import events, selectors
from polls.models import Ballot, Poll
from web.templatetags.clouds import DENSITY_VH, cloud_layout
from web.tests.conftest import HTMX

pytestmark = pytest.mark.django_db

HTMX_CASES = pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
WORDS_FORM = {
    "question": "One word for this morning?",
    "kind": "words",
    "choices": ["", "", ""],  # the hidden choice rows still post, empty
    "max_words": "2",
    "scale_min": "1",  # so do the scale's, which count only for a scale
    "scale_max": "5",
    "results_visibility": "always",
    "dedupe": "browser",
}


def create_cloud(client: Client, **fields) -> tuple[Poll, str]:
    # As in production, the new poll's empty tally is in Redis before its first vote (its commit's
    # callbacks run): a first read rebuilding it from the record would count that vote twice here.
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post("/polls/new/", WORDS_FORM | fields)
    assert response.status_code == 302, response.content.decode()[:2000]
    slug = response["Location"].split("/")[2]  # /p/<slug>/manage/<token>/
    return Poll.objects.get(slug=slug), response["Location"]


def send(poll: Poll, *words: str, client: Client | None = None, headers: dict | None = None, capture=None):
    with capture(execute=True):
        return (client or Client()).post(f"/p/{poll.slug}/vote/", {"words": list(words)}, **(headers or {}))


def cloud_texts(page: str) -> list[str]:
    """The cloud's terms as drawn, in the page's order."""
    found = re.search(r'<ul class="cloud[^"]*"[^>]*>(.*?)</ul>', page, re.S)
    return re.findall(r'<li class="cloud-term[^"]*"[^>]*>([^<]*)</li>', found[1]) if found else []


def test_the_create_form_offers_a_word_cloud_without_javascript():
    page = Client().get("/").content.decode()
    assert 'name="kind" value="words"' in page and 'name="max_words"' in page and 'name="profanity_filter"' in page


def test_the_create_form_makes_a_word_cloud_and_ignores_the_other_kinds_fields():
    poll, _ = create_cloud(Client(), profanity_filter="1")
    assert (poll.kind, poll.max_words, poll.profanity_filter, poll.scale_min) == ("words", 2, True, None)
    assert not poll.choices.exists()


def test_a_choice_poll_ignores_the_word_cloud_fields():
    poll, _ = create_cloud(Client(), kind="choice", choices=["Tea", "Coffee"], profanity_filter="1")
    assert (poll.kind, poll.max_words, poll.profanity_filter) == ("choice", None, False)


def test_the_vote_form_has_one_box_per_word_the_first_required():
    poll, _ = create_cloud(Client())
    page = Client().get(f"/p/{poll.slug}/").content.decode()
    boxes = re.findall(r'<input type="text" name="words"[^>]*>', page, re.S)
    assert len(boxes) == 2 and "required" in boxes[0] and "required" not in boxes[1]
    assert 'maxlength="40"' in boxes[0]


@HTMX_CASES
def test_a_voter_sends_words_and_the_cloud_shows_them(headers, django_capture_on_commit_callbacks):
    poll, _ = create_cloud(Client())
    voter = Client()
    response = send(poll, "Sleepy", "coffee", client=voter, headers=headers, capture=django_capture_on_commit_callbacks)
    assert response.status_code == (200 if headers else 302)
    send(poll, "sleepy", "", capture=django_capture_on_commit_callbacks)
    assert Ballot.objects.filter(poll=poll).count() == 2
    results = Client().get(f"/p/{poll.slug}/results/").content.decode()
    assert sorted(cloud_texts(results)) == ["Sleepy", "coffee"]
    assert "Sleepy: 2" in results  # the screen reader list says the counts
    assert '<span id="results-total">2</span> voters' in results


@HTMX_CASES
def test_a_refused_ballot_says_why_and_keeps_what_was_typed(headers, django_capture_on_commit_callbacks):
    poll, _ = create_cloud(Client())
    response = send(poll, "x" * 41, "fine", headers=headers, capture=django_capture_on_commit_callbacks)
    page = response.content.decode()
    assert response.status_code == 400 and "at most 40 characters" in page
    assert 'value="fine"' in page and not Ballot.objects.exists()


def test_a_forged_ballot_with_too_many_boxes_is_a_clear_400(django_capture_on_commit_callbacks):
    poll, _ = create_cloud(Client())
    response = send(poll, *["a"] * 50, capture=django_capture_on_commit_callbacks)
    assert response.status_code == 400 and "at most" in response.content.decode()


def test_the_big_screen_and_the_overlay_draw_the_cloud(django_capture_on_commit_callbacks):
    poll, _ = create_cloud(Client())
    for voter in range(3):
        send(poll, "Brunch", f"word{voter}", capture=django_capture_on_commit_callbacks)
    for page in (f"/p/{poll.slug}/live/", f"/p/{poll.slug}/live/?overlay=1"):
        drawn = cloud_texts(Client().get(page).content.decode())
        assert sorted(drawn) == ["Brunch", "word0", "word1", "word2"]
        assert drawn.index("Brunch") == (len(drawn) - 1) // 2  # the most frequent in the middle


def test_the_cloud_is_drawn_smaller_the_more_it_holds():
    poll = Poll(id=2**31 - 1, kind=Poll.Kind.WORDS, max_words=3)  # never saved: it has no choices
    few = selectors._results(poll, _tally({"tea": 3, "coffee": 1}))
    many = selectors._results(poll, _tally({f"{n:040}": 1 for n in range(100)}))
    assert cloud_layout(few.cloud).density == 1
    assert cloud_layout(many.cloud).density == len(DENSITY_VH)


def _tally(terms: dict[str, int]):
    from polls.tallies.counts import Tally

    return Tally(counts={}, total=sum(terms.values()), version=1, terms=terms)


@HTMX_CASES
def test_the_owner_hides_a_term_and_shows_it_again(headers, django_capture_on_commit_callbacks):
    owner = Client()
    poll, manage_url = create_cloud(owner)
    send(poll, "Rude", "nice", capture=django_capture_on_commit_callbacks)
    page = owner.get(manage_url).content.decode()
    assert 'id="word-moderation"' in page and 'aria-label="Hide “Rude”"' in page

    response = owner.post(f"{manage_url}words/", {"action": "hide", "term": "rude"}, **headers)
    assert response.status_code == (200 if headers else 302)
    assert cloud_texts(Client().get(f"/p/{poll.slug}/results/").content.decode()) == ["nice"]
    assert "Show again" in owner.get(manage_url).content.decode()

    owner.post(f"{manage_url}words/", {"action": "show", "term": "rude"}, **headers)
    assert sorted(cloud_texts(Client().get(f"/p/{poll.slug}/results/").content.decode())) == ["Rude", "nice"]


def test_the_owner_switches_the_profanity_filter(django_capture_on_commit_callbacks):
    owner = Client()
    poll, manage_url = create_cloud(owner)
    send(poll, "merde", "bonjour", capture=django_capture_on_commit_callbacks)
    owner.post(f"{manage_url}words/", {"action": "filter_on"})
    assert cloud_texts(Client().get(f"/p/{poll.slug}/results/").content.decode()) == ["bonjour"]
    owner.post(f"{manage_url}words/", {"action": "filter_off"})
    assert len(cloud_texts(Client().get(f"/p/{poll.slug}/results/").content.decode())) == 2


def test_moderation_needs_the_owner_token_and_a_word_cloud():
    owner = Client()
    poll, manage_url = create_cloud(owner)
    assert Client().post(f"/p/{poll.slug}/manage/wrong-token/words/", {"action": "filter_on"}).status_code == 404
    refused = owner.post(f"{manage_url}words/", {"action": "explode"})
    assert refused.status_code == 400 and "could not be read" in refused.content.decode()  # the owner page says so
    choice_poll, choice_manage = create_cloud(Client(), kind="choice", choices=["A", "B"])
    assert Client().post(f"{choice_manage}words/", {"action": "filter_on"}).status_code == 404


def test_the_csv_lists_each_ballots_words(django_capture_on_commit_callbacks):
    owner = Client()
    poll, manage_url = create_cloud(owner)
    send(poll, "Tea", "milk", capture=django_capture_on_commit_callbacks)
    rows = list(csv.reader(io.StringIO(b"".join(owner.get(f"{manage_url}export.csv").streaming_content).decode())))
    assert rows[0] == ["submitted_at", "word 1", "word 2"] and rows[1][1:] == ["Tea", "milk"]


def test_an_event_typed_as_text_takes_a_word_cloud_question():
    response = Client().post(
        "/events/new/", {"title": "Kick-off", "questions": "How do you feel?\nwords 2\n\nTea or coffee?\nTea\nCoffee"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    cloud_question, choice_question = Poll.objects.order_by("event_position")
    assert (cloud_question.kind, cloud_question.max_words, choice_question.kind) == ("words", 2, "choice")


def test_an_events_phone_sends_words(django_capture_on_commit_callbacks):
    event, (question,), _ = events.event_create(
        title="Kick-off", questions=[events.QuestionInput(question="How do you feel?", kind="words")]
    )
    events.event_control(event=event, action="next")
    events.event_control(event=event.__class__.objects.get(pk=event.pk), action="open")
    phone = Client()
    assert 'name="words"' in phone.get(f"/e/{event.code}/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = phone.post(f"/e/{event.code}/vote/", {"question": question.slug, "words": ["Awake", "happy"]})
    assert response.status_code == 302
    assert Ballot.objects.get(poll=question).terms == "Awake\nhappy"


def test_an_events_big_screen_says_how_to_answer_a_word_cloud_and_a_rating_before_the_reveal():
    event, _, _ = events.event_create(
        title="Kick-off",
        questions=[
            events.QuestionInput(question="How do you feel?", kind="words", max_words=2),
            events.QuestionInput(question="How was it?", kind="scale", scale_labels=["Bad", "Great"]),
        ],
    )
    events.event_control(event=event, action="next")
    screen = Client().get(f"/e/{event.code}/live/").content.decode()
    assert "Type up to 2 words on your phone" in screen
    events.event_control(event=event.__class__.objects.get(pk=event.pk), action="next")
    screen = Client().get(f"/e/{event.code}/live/").content.decode()
    assert "Rate from 1" in screen and "Great" in screen
