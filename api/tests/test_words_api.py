"""Word clouds through the API (DESIGN.md, "Question kinds")."""

import pytest
from django.test import Client

from api.tests.test_api import HOST, assert_error, post_json
from polls import moderation, selectors
from polls.models import Ballot
from polls.ratelimit import SLICES
from polls.words import CLOUD_MAX_TERMS

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _long_rate_limit_window(settings):
    settings.RATELIMIT_WINDOW = 3600  # long, so no test straddles a window boundary


@pytest.fixture
def client():
    return Client(HTTP_HOST=HOST)


def create_cloud(client, **fields) -> dict:
    body = {"question": "One word for today?", "kind": "words"} | fields
    response = post_json(client, "/api/polls/", body)
    assert response.status_code == 201, response.content
    return response.json()


def create_choice_poll(client) -> dict:
    return post_json(client, "/api/polls/", {"question": "Q?", "choices": ["A", "B"]}).json()


def send(client, poll: dict, words, voter: str = "v"):
    return post_json(client, "/api/votes/", {"poll": poll["id"], "words": words, "voter": voter})


def cloud(client, poll: dict) -> list[dict]:
    response = client.get(f"/api/polls/{poll['id']}/results/")
    assert response.status_code == 200, response.content
    return response.json()["words"]


# --- POST /api/polls/ -------------------------------------------------------------------


def test_a_word_cloud_is_created_with_no_choices_3_words_and_no_filter_by_default(client):
    poll = create_cloud(client)
    assert (poll["kind"], poll["choices"], poll["max_words"], poll["profanity_filter"]) == ("words", [], 3, False)
    assert "manage_url" in poll


def test_a_word_cloud_answers_its_settings_when_created_and_read(client):
    poll = create_cloud(client, max_words=5, profanity_filter=True)
    assert (poll["max_words"], poll["profanity_filter"]) == (5, True)
    read = client.get(f"/api/polls/{poll['id']}/").json()
    assert (read["kind"], read["max_words"], read["profanity_filter"]) == ("words", 5, True)
    assert "manage_url" not in read


def test_a_poll_of_another_kind_answers_no_max_words(client):
    poll = create_choice_poll(client)
    read = client.get(f"/api/polls/{poll['id']}/").json()
    assert (read["kind"], read["max_words"], read["profanity_filter"]) == ("choice", None, False)
    scale = post_json(client, "/api/polls/", {"question": "Q?", "kind": "scale"}).json()
    assert scale["max_words"] is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"max_words": 0}, "max_words"),
        ({"max_words": 6}, "max_words"),
        ({"max_words": "3"}, "max_words"),
        ({"max_words": 2.5}, "max_words"),
        ({"choices": ["A", "B"]}, "choices"),
        ({"scale_max": 5}, "kind"),
        ({"profanity_filter": "yes"}, "profanity_filter"),
        ({"profanity_filter": 1}, "profanity_filter"),
    ],
)
def test_a_bad_word_cloud_is_400_naming_the_field(client, fields, field):
    response = post_json(client, "/api/polls/", {"question": "Q?", "kind": "words"} | fields)
    assert_error(response, 400, field=field)


def test_max_words_on_a_poll_of_choices_is_400(client):
    body = {"question": "Q?", "choices": ["A", "B"], "max_words": 2}
    assert_error(post_json(client, "/api/polls/", body), 400, field="max_words")


def test_an_event_question_may_be_a_word_cloud(client):
    body = {"title": "Talk", "questions": [{"question": "One word?", "kind": "words", "max_words": 1}]}
    response = post_json(client, "/api/events/", body)
    assert response.status_code == 201, response.content
    question = response.json()["questions"][0]
    assert (question["kind"], question["max_words"], question["choices"]) == ("words", 1, [])


# --- POST /api/votes/ -------------------------------------------------------------------


def test_words_are_201_and_answered_as_kept(client):
    poll = create_cloud(client)
    response = send(client, poll, ["  Coffee ", "deep   work"], voter="alice")
    assert response.status_code == 201, response.content
    assert response.json() == {"poll": poll["id"], "choices": [], "words": ["Coffee", "deep work"], "voter": "alice"}
    (ballot,) = Ballot.objects.filter(poll__slug=poll["id"])
    assert ballot.terms == "Coffee\ndeep work"


def test_a_vote_of_choices_answers_no_words(client):
    poll = create_choice_poll(client)
    first = poll["choices"][0]["id"]
    response = post_json(client, "/api/votes/", {"poll": poll["id"], "choices": [first], "voter": "v"})
    assert response.status_code == 201 and response.json()["words"] == []


def test_spellings_of_one_term_count_once_on_a_ballot_and_as_one_term(client, django_capture_on_commit_callbacks):
    poll = create_cloud(client)
    with django_capture_on_commit_callbacks(execute=True):  # tallies follow the commit
        assert send(client, poll, ["AI", " ai "], voter="a").json()["words"] == ["AI"]
        assert send(client, poll, [" ai "], voter="b").status_code == 201
        assert send(client, poll, ["AI", "robots"], voter="c").status_code == 201
    assert cloud(client, poll) == [{"text": "AI", "count": 3}, {"text": "robots", "count": 1}]


@pytest.mark.parametrize(
    ("words", "says"),
    [
        (["one", "two", "three"], "at most 2 words"),
        (["a", "b", "c", "d", "e", "f"], "at most 5 words"),
        (["x" * 41], "at most 40 characters"),
        (["x" * 201], ""),
        ([], "at least one word"),
        ([" ", ""], "at least one word"),
        ([1], "text"),
        ("coffee", ""),
        (None, ""),
    ],
)
def test_bad_words_are_400_on_words_and_nothing_is_counted(client, words, says):
    poll = create_cloud(client, max_words=2)
    body = assert_error(send(client, poll, words), 400, field="words")
    assert says in body["detail"].lower(), body
    assert not Ballot.objects.filter(poll__slug=poll["id"]).exists()


def test_a_word_of_40_characters_once_trimmed_is_taken(client):
    poll = create_cloud(client)
    response = send(client, poll, ["  " + "x" * 40 + "  "])
    assert response.status_code == 201 and response.json()["words"] == ["x" * 40]


def test_words_to_a_poll_of_another_kind_are_400_on_words(client):
    choice = create_choice_poll(client)
    scale = post_json(client, "/api/polls/", {"question": "Q?", "kind": "scale"}).json()
    for poll, says in ((choice, "not a word cloud"), (scale, "rating scale: send a 'value'")):
        assert_error(send(client, poll, ["coffee"]), 400, field="words", detail_contains=says)
        assert not Ballot.objects.filter(poll__slug=poll["id"]).exists()


@pytest.mark.parametrize("body", [{"choices": [1]}, {"value": 3}, {"words": ["coffee"], "choices": [1]}])
def test_choices_or_a_value_to_a_word_cloud_are_400_on_words(client, body):
    poll = create_cloud(client)
    response = post_json(client, "/api/votes/", {"poll": poll["id"], "voter": "v"} | body)
    assert_error(response, 400, field="words")
    assert not Ballot.objects.filter(poll__slug=poll["id"]).exists()


def test_a_second_ballot_of_the_same_voter_is_409_and_not_counted(client, django_capture_on_commit_callbacks):
    poll = create_cloud(client)
    with django_capture_on_commit_callbacks(execute=True):
        assert send(client, poll, ["first"], voter="Alice").status_code == 201
        assert_error(send(client, poll, ["second"], voter=" alice "), 409, detail_contains="already voted")
    assert cloud(client, poll) == [{"text": "first", "count": 1}]


def test_a_voter_over_the_limit_gets_429_on_a_word_cloud_too(client, settings):
    settings.RATELIMIT_VOTES_PER_VOTER = 3
    polls = [create_cloud(client) for _ in range(4)]
    assert [send(client, poll, ["eager"], voter="eager").status_code for poll in polls[:3]] == [201, 201, 201]
    response = send(client, polls[3], ["eager"], voter="eager")
    assert_error(response, 429, detail_contains="too many votes from you")
    assert 1 <= int(response["Retry-After"]) <= settings.RATELIMIT_WINDOW * (1 + 1 / SLICES)
    assert not Ballot.objects.filter(poll__slug=polls[3]["id"]).exists()
    assert send(client, polls[3], ["patient"], voter="patient").status_code == 201


def test_an_address_over_its_limit_gets_429_on_a_word_cloud_too(client, settings):
    settings.RATELIMIT_VOTES_PER_ADDRESS = 2
    poll = create_cloud(client)
    assert [send(client, poll, ["w"], voter=f"v{i}").status_code for i in range(2)] == [201, 201]
    assert_error(send(client, poll, ["w"], voter="v3"), 429, detail_contains="network")


# --- GET /api/polls/<id>/results/ -------------------------------------------------------


def test_results_list_the_words_most_frequent_first_and_count_ballots(client, django_capture_on_commit_callbacks):
    poll = create_cloud(client)
    empty = client.get(f"/api/polls/{poll['id']}/results/").json()
    assert (empty["kind"], empty["total"], empty["words"], empty["choices"]) == ("words", 0, [], [])
    with django_capture_on_commit_callbacks(execute=True):
        for voter, words in enumerate([["tea", "cake"], ["Cake"], ["cake", "jam", "tea"], ["scones"]]):
            assert send(client, poll, words, voter=f"v{voter}").status_code == 201
    body = client.get(f"/api/polls/{poll['id']}/results/").json()
    assert (body["kind"], body["total"], body["choices"]) == ("words", 4, [])
    assert body["words"] == [
        {"text": "cake", "count": 3},
        {"text": "tea", "count": 2},
        {"text": "jam", "count": 1},
        {"text": "scones", "count": 1},
    ]


def test_results_of_other_kinds_have_no_words(client):
    poll = create_choice_poll(client)
    assert "words" not in client.get(f"/api/polls/{poll['id']}/results/").json()


def test_a_term_the_owner_hid_leaves_the_results(client, django_capture_on_commit_callbacks):
    poll = create_cloud(client)
    with django_capture_on_commit_callbacks(execute=True):
        send(client, poll, ["Rude", "nice"], voter="a")
        send(client, poll, ["rude"], voter="b")
    assert [(term["text"].lower(), term["count"]) for term in cloud(client, poll)] == [("rude", 2), ("nice", 1)]
    with django_capture_on_commit_callbacks(execute=True):
        moderation.poll_hide_term(poll=selectors.poll_get(slug=poll["id"]), term="RUDE")
    body = client.get(f"/api/polls/{poll['id']}/results/").json()
    assert (body["words"], body["total"]) == ([{"text": "nice", "count": 1}], 2)


def test_the_profanity_filter_chosen_at_creation_leaves_profane_terms_out(client, django_capture_on_commit_callbacks):
    filtered, open_ = create_cloud(client, profanity_filter=True), create_cloud(client)
    with django_capture_on_commit_callbacks(execute=True):
        for poll in (filtered, open_):
            assert send(client, poll, ["shit", "class"]).status_code == 201
    assert cloud(client, filtered) == [{"text": "class", "count": 1}]
    assert len(cloud(client, open_)) == 2


def test_results_show_at_most_100_terms(client, django_capture_on_commit_callbacks):
    poll = create_cloud(client, max_words=5)
    with django_capture_on_commit_callbacks(execute=True):
        for voter in range(30):  # 121 different terms: "common" on every ballot, and 4 of the voter's own
            words = ["common", *(f"w{voter:02}{n}" for n in range(4))]
            assert send(client, poll, words, voter=f"v{voter}").status_code == 201
    words = cloud(client, poll)
    assert len(words) == CLOUD_MAX_TERMS
    assert words[0] == {"text": "common", "count": 30}
    assert words[1:4] == [{"text": "w000", "count": 1}, {"text": "w001", "count": 1}, {"text": "w002", "count": 1}]
