"""Rating scales through the API (DESIGN.md, "Question kinds")."""

import pytest
from django.test import Client

from api.tests.test_api import HOST, assert_error, post_json

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    return Client(HTTP_HOST=HOST)


def create_scale(client, **fields) -> dict:
    body = {"question": "How was the talk?", "kind": "scale"} | fields
    response = post_json(client, "/api/polls/", body)
    assert response.status_code == 201, response.content
    return response.json()


def rate(client, poll: dict, value, voter: str):
    return post_json(client, "/api/votes/", {"poll": poll["id"], "value": value, "voter": voter})


def test_a_scale_is_created_with_its_range_and_labels_and_answers_them(client):
    poll = create_scale(client, scale_min=0, scale_max=10, scale_labels=["Never", "Certainly"])
    assert (poll["kind"], poll["scale_min"], poll["scale_max"]) == ("scale", 0, 10)
    assert poll["scale_labels"] == ["Never", "Certainly"]
    assert client.get(f"/api/polls/{poll['id']}/").json()["scale_labels"] == ["Never", "Certainly"]
    defaults = create_scale(client)
    assert (defaults["scale_min"], defaults["scale_max"], defaults["scale_labels"]) == (1, 5, ["", ""])


def test_a_choice_poll_answers_its_kind_and_no_scale(client):
    poll = post_json(client, "/api/polls/", {"question": "Q?", "choices": ["A", "B"]}).json()
    assert (poll["kind"], poll["scale_min"], poll["scale_labels"]) == ("choice", None, None)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"scale_min": 5, "scale_max": 5}, "scale_max"),
        ({"scale_max": 11}, "scale_max"),
        ({"choices": ["A", "B"]}, "choices"),
        ({"scale_labels": ["low"]}, "scale_labels"),
        ({"kind": "sliders"}, "kind"),
    ],
)
def test_a_bad_scale_is_400_naming_the_field(client, fields, field):
    assert_error(post_json(client, "/api/polls/", {"question": "Q?", "kind": "scale"} | fields), 400, field=field)


def test_a_choice_poll_without_choices_is_still_400(client):
    assert_error(post_json(client, "/api/polls/", {"question": "Q?"}), 400, field="choices")


def test_ratings_give_the_average_the_median_and_every_value(client, django_capture_on_commit_callbacks):
    poll = create_scale(client)
    empty = client.get(f"/api/polls/{poll['id']}/results/").json()
    assert (empty["kind"], empty["average"], empty["median"], empty["total"]) == ("scale", None, None, 0)
    with django_capture_on_commit_callbacks(execute=True):  # tallies follow the commit
        for voter, value in enumerate([4, 5, 5, 2]):
            assert rate(client, poll, value, f"v{voter}").status_code == 201
    body = client.get(f"/api/polls/{poll['id']}/results/").json()
    assert (body["total"], body["average"], body["median"]) == (4, 4.0, 4.5)
    assert body["distribution"] == [
        {"value": 1, "votes": 0},
        {"value": 2, "votes": 1},
        {"value": 3, "votes": 0},
        {"value": 4, "votes": 1},
        {"value": 5, "votes": 2},
    ]


@pytest.mark.parametrize("value", [0, 6, 2.5, "3", True])
def test_a_rating_off_the_scale_is_400_on_value(client, value):
    poll = create_scale(client)
    assert_error(rate(client, poll, value, "v"), 400, field="value")


def test_a_body_of_the_wrong_kind_is_400(client):
    scale = create_scale(client)
    choice = post_json(client, "/api/polls/", {"question": "Q?", "choices": ["A", "B"]}).json()
    first = choice["choices"][0]["id"]
    assert_error(post_json(client, "/api/votes/", {"poll": scale["id"], "choices": [first], "voter": "v"}), 400)
    assert_error(rate(client, choice, 1, "v"), 400, field="value")
    both = {"poll": scale["id"], "choices": [first], "value": 3, "voter": "v"}
    assert_error(post_json(client, "/api/votes/", both), 400, field="choices")


def test_an_event_question_may_be_a_scale(client):
    body = {"title": "Talk", "questions": [{"question": "Rate it", "kind": "scale", "scale_max": 10}]}
    created = post_json(client, "/api/events/", body).json()
    assert created["questions"][0]["kind"] == "scale" and created["questions"][0]["scale_max"] == 10
