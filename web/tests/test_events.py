"""The event pages through the test client, with and without the `HX-Request` header."""

import re

import pytest
from django.test import Client

from polls import events, selectors
from polls.events import QuestionInput
from polls.models import Ballot, Event, Poll
from web.tests.conftest import HTMX

pytestmark = pytest.mark.django_db

HTMX_CASES = pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
QUESTIONS_TEXT = "Tea or coffee?\nTea\nCoffee\n\nBest talk?\nKeynote\nPanel\nDemo\n\nAgain next year?\nYes\nNo\n"


@pytest.fixture
def event_setup():
    event, questions, token = events.event_create(
        title="All-hands",
        questions=[
            QuestionInput(question="Tea or coffee?", choices=["Tea", "Coffee"]),
            QuestionInput(question="Best talk?", choices=["Keynote", "Panel", "Demo"]),
        ],
    )
    return event, questions, token


def console(event: Event, token: str, suffix: str = "") -> str:
    return f"/e/{event.code}/manage/{token}/{suffix}"


def act(client: Client, event: Event, token: str, action: str, **fields):
    return client.post(console(event, token, "control/"), {"action": action, **fields})


def test_the_landing_page_offers_to_join_with_a_code_and_to_create_an_event():
    page = Client().get("/").content.decode()
    assert 'action="/join/"' in page and 'name="code"' in page
    assert 'href="/events/new/"' in page


def test_the_create_form_makes_an_event_from_plain_text_and_opens_its_console():
    response = Client().post("/events/new/", {"title": "All-hands", "questions": QUESTIONS_TEXT})
    event = Event.objects.get()
    assert response.status_code == 302
    assert response["Location"].startswith(f"/e/{event.code}/manage/")
    assert [poll.question for poll in events.event_questions(event=event)] == [
        "Tea or coffee?",
        "Best talk?",
        "Again next year?",
    ]
    page = Client().get(response["Location"]).content.decode()
    assert "Not started" in page and "<strong>0</strong> phones connected" in page
    assert f'href="/e/{event.code}/live/" target="_blank"' in page


def test_the_create_form_names_the_question_that_lacks_choices():
    response = Client().post("/events/new/", {"title": "All-hands", "questions": "Tea or coffee?\nTea\n\nNext?\nA\nB"})
    assert response.status_code == 400
    assert "Question 1 needs at least 2 choices" in response.content.decode()
    assert not Event.objects.exists()


def test_join_redirects_a_known_code_even_typed_with_a_space(event_setup):
    event, _, _ = event_setup
    response = Client().get("/join/", {"code": f"{event.code[:3]} {event.code[3:]}"})
    assert (response.status_code, response["Location"]) == (302, f"/e/{event.code}/")


def test_join_explains_an_unknown_code_and_keeps_it_in_the_box(event_setup):
    event, _, _ = event_setup
    unknown = "999999" if event.code != "999999" else "999998"
    response = Client().get("/join/", {"code": unknown})
    page = response.content.decode()
    assert response.status_code == 404 and "Nothing runs under this code" in page and f'value="{unknown}"' in page
    assert Client().get("/join/").status_code == 200  # the form alone


def test_an_unknown_code_is_404_on_every_page():
    assert Client().get("/e/123456/").status_code == 404
    assert Client().get("/e/123456/live/").status_code == 404


def test_a_wrong_presenter_token_is_404(event_setup):
    event, _, _ = event_setup
    assert Client().get(console(event, "wrong")).status_code == 404
    assert act(Client(), event, "wrong", "next").status_code == 404


def test_the_phone_waits_then_follows_the_presenter_on_reload(event_setup):
    event, (first, _), token = event_setup
    phone = Client()
    assert "Waiting for the presenter" in phone.get(f"/e/{event.code}/").content.decode()
    act(Client(), event, token, "next")
    page = phone.get(f"/e/{event.code}/").content.decode()
    assert "Tea or coffee?" in page and "Voting opens when the presenter says so" in page
    assert 'name="choice"' not in page
    act(Client(), event, token, "open")
    page = phone.get(f"/e/{event.code}/").content.decode()
    assert 'name="choice"' in page and f'value="{first.slug}"' in page
    assert f'ws-connect="/ws/events/{event.code}/"' in page


@HTMX_CASES
def test_a_phone_votes_then_sees_its_answer_is_in_and_once_revealed_its_own_pick(headers, event_setup):
    event, (first, _), token = event_setup
    presenter = Client()
    act(presenter, event, token, "next")
    act(presenter, event, token, "open")
    phone = Client()
    coffee = list(first.choices.all())[1]
    response = phone.post(f"/e/{event.code}/vote/", {"question": first.slug, "choice": [coffee.id]}, **headers)
    assert response.status_code == (200 if headers else 302)
    page = phone.get(f"/e/{event.code}/").content.decode()
    assert "Your answer is in." in page and 'name="choice"' not in page
    assert 'id="results"' not in page  # not revealed yet
    act(presenter, event, token, "reveal")
    page = phone.get(f"/e/{event.code}/").content.decode()
    assert 'data-mine="p1"' in page and 'data-pick="p1"' in page
    assert Ballot.objects.filter(poll=first).count() == 1


def test_a_vote_outside_the_window_is_refused_with_the_reason_and_the_ticks_kept(event_setup):
    event, (first, _), token = event_setup
    act(Client(), event, token, "next")  # shown, not open
    tea = list(first.choices.all())[0]
    response = Client().post(f"/e/{event.code}/vote/", {"question": first.slug, "choice": [tea.id]}, **HTMX)
    assert response.status_code == 403
    assert "not open" in response.content.decode()
    assert not Ballot.objects.exists()


def test_a_vote_for_a_question_of_another_event_is_refused(event_setup):
    event, _, token = event_setup
    other, (foreign, _), other_token = events.event_create(
        title="Other", questions=[QuestionInput(question="Q?", choices=["A", "B"])] * 2
    )
    choice = list(foreign.choices.all())[0]
    response = Client().post(f"/e/{event.code}/vote/", {"question": foreign.slug, "choice": [choice.id]})
    assert response.status_code == 400 and not Ballot.objects.exists()


@HTMX_CASES
def test_the_console_runs_the_event_with_plain_forms_or_htmx(headers, event_setup):
    event, (first, second), token = event_setup
    presenter = Client()
    response = presenter.post(console(event, token, "control/"), {"action": "next"}, **headers)
    if headers:
        assert response.status_code == 200 and "Shown, not open" in response.content.decode()
        assert "<html" not in response.content.decode()
    else:
        assert response.status_code == 302 and response["Location"] == console(event, token)
    presenter.post(console(event, token, "control/"), {"action": "open", "seconds": "20"}, **headers)
    state = events.event_state(event=Event.objects.get())
    assert (state.active, state.phase) == (first.slug, "open") and state.closes_at is not None
    page = presenter.get(console(event, token)).content.decode()
    assert "Voting open" in page and 'id="results"' in page  # the presenter always sees the results
    presenter.post(console(event, token, "control/"), {"action": "goto", "question": second.slug}, **headers)
    assert events.event_state(event=Event.objects.get()).active == second.slug


def test_the_console_explains_an_action_that_cannot_apply(event_setup):
    event, _, token = event_setup
    response = Client().post(console(event, token, "control/"), {"action": "open"}, **HTMX)
    assert response.status_code == 400 and "No question is on screen yet" in response.content.decode()
    response = Client().post(console(event, token, "control/"), {"action": "open", "seconds": "2"})
    assert response.status_code == 400
    assert "greater than or equal to 5" in response.content.decode()


def test_the_big_screen_shows_the_code_the_link_and_the_qr_and_results_only_when_revealed(event_setup):
    event, (first, _), token = event_setup
    act(Client(), event, token, "next")
    page = Client().get(f"/e/{event.code}/live/").content.decode()
    assert f"{event.code[:3]}&nbsp;{event.code[3:]}" in page and f"/e/{event.code}/" in page
    assert f'src="/e/{event.code}/qr.svg"' in page
    assert "Tea or coffee?" in page and 'id="results"' not in page
    act(Client(), event, token, "reveal")
    assert 'id="results"' in Client().get(f"/e/{event.code}/live/").content.decode()
    assert Client().get(f"/e/{event.code}/qr.svg")["Content-Type"] == "image/svg+xml"


def test_an_ended_event_says_so_to_its_phones(event_setup):
    event, _, token = event_setup
    act(Client(), event, token, "end")
    assert "This event has ended" in Client().get(f"/e/{event.code}/").content.decode()


def test_the_owner_page_of_a_question_sends_its_owner_to_the_console(event_setup):
    event, (first, _), token = event_setup
    page = Client().get(f"/p/{first.slug}/manage/{token}/").content.decode()
    assert f'href="/e/{event.code}/manage/{token}/"' in page
    assert "Close voting now" not in page and "Reopen voting" not in page
    response = Client().post(f"/p/{first.slug}/manage/{token}/reopen/")
    assert response.status_code == 400 and "presenter" in response.content.decode()
    assert not selectors.poll_get(slug=first.slug).is_open()
    response = Client().post(f"/p/{first.slug}/manage/{token}/delete/")
    assert response.status_code == 400 and Poll.objects.filter(slug=first.slug).exists()


def test_the_phone_count_fragment_answers_the_console(event_setup):
    event, _, token = event_setup
    fragment = Client().get(console(event, token, "phones/")).content.decode()
    assert re.search(r"<strong>0</strong> phones connected", fragment)


def test_the_create_form_reads_a_scale_line_as_a_rating_question():
    text = "Tea or coffee?\nTea\nCoffee\n\nHow was it?\nscale 0-10: Dull / Brilliant\n\nAgain?\nscale 1 to 5"
    response = Client().post("/events/new/", {"title": "Talk", "questions": text})
    assert response.status_code == 302
    first, rating, plain = events.event_questions(event=Event.objects.get())
    assert (first.kind, rating.kind, plain.kind) == ("choice", "scale", "scale")
    assert (rating.scale_min, rating.scale_max, rating.scale_low_label, rating.scale_high_label) == (
        0,
        10,
        "Dull",
        "Brilliant",
    )
    assert (plain.scale_min, plain.scale_max, plain.scale_low_label) == (1, 5, "")
