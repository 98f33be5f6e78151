"""The events API's contract (DESIGN.md, "Events"): create, read, control with the owner token."""

import pytest
from django.test import Client

from api.tests.test_api import HOST, assert_error, post_json
from polls.models import Ballot

pytestmark = pytest.mark.django_db

BODY = {
    "title": "All-hands",
    "questions": [
        {"question": "Tea or coffee?", "choices": ["Tea", "Coffee"]},
        {"question": "Best talks?", "choices": ["Keynote", "Panel", "Demo"], "max_choices": 2},
        {"question": "Again?", "choices": ["Yes", "No"]},
    ],
}


@pytest.fixture
def client():
    return Client(HTTP_HOST=HOST)


def create(client, body=BODY) -> dict:
    response = post_json(client, "/api/events/", body)
    assert response.status_code == 201, response.content
    return response.json()


def token_of(created: dict) -> str:
    return created["manage_url"].rstrip("/").rsplit("/", 1)[1]


def control(client, created: dict, token: str | None = None, **body):
    headers = {} if token == "" else {"Authorization": f"Bearer {token or token_of(created)}"}
    return post_json(client, f"/api/events/{created['id']}/control/", body, **headers)


def test_create_answers_the_event_its_links_its_questions_and_its_state(client):
    created = create(client)
    assert set(created) == {"id", "code", "title", "join_url", "live_url", "manage_url", "questions", "state"}
    assert len(created["code"]) == 6 and created["code"].isdigit()
    assert created["join_url"] == f"http://127.0.0.1:8000/e/{created['code']}/"
    assert created["live_url"] == f"http://127.0.0.1:8000/e/{created['code']}/live/"
    assert created["manage_url"].startswith(f"http://127.0.0.1:8000/e/{created['code']}/manage/")
    assert [question["question"] for question in created["questions"]] == ["Tea or coffee?", "Best talks?", "Again?"]
    assert created["questions"][1]["max_choices"] == 2
    assert all(question["closed"] for question in created["questions"])
    assert created["state"] == {
        "active": None,
        "index": None,
        "phase": "waiting",
        "closes_at": None,
        "reveal": False,
        "ended": False,
        "version": 1,
    }


def test_read_answers_the_same_without_the_manage_url(client):
    created = create(client)
    read = client.get(f"/api/events/{created['id']}/").json()
    assert read == {key: value for key, value in created.items() if key != "manage_url"}
    assert_error(client.get("/api/events/nope/"), 404, detail_contains="No event has this id")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "x", "questions": []}, "questions"),
        ({"title": "x", "questions": [{"question": "Q?", "choices": ["A", "B"]}] * 51}, "questions"),
        ({"title": "", "questions": BODY["questions"]}, "title"),
        ({"title": "x", "questions": [{"question": "Q?", "choices": ["A"]}]}, "questions"),
        (
            {"title": "x", "questions": [{"question": "Q?", "choices": ["A", "B"], "closes_at": "2099-01-01T00:00Z"}]},
            "questions",
        ),
    ],
)
def test_create_refuses_a_bad_event_saying_which_field(client, body, field):
    assert_error(post_json(client, "/api/events/", body), 400, field=field)


def test_control_runs_the_event_and_answers_its_state(client):
    created = create(client)
    first, second = created["questions"][0]["id"], created["questions"][1]["id"]
    state = control(client, created, action="next").json()["state"]
    assert (state["active"], state["index"], state["phase"]) == (first, 0, "waiting")
    state = control(client, created, action="open", seconds=20).json()["state"]
    assert state["phase"] == "open" and state["closes_at"] is not None
    assert state["reveal"] is False
    assert control(client, created, action="reveal").json()["state"]["reveal"] is True
    state = control(client, created, action="goto", question=second).json()["state"]
    assert (state["active"], state["index"], state["phase"], state["reveal"]) == (second, 1, "waiting", False)
    assert client.get(f"/api/events/{created['id']}/").json()["state"] == state


def test_control_without_the_owner_token_is_403_and_changes_nothing(client):
    created = create(client)
    assert_error(control(client, created, token="", action="next"), 403, detail_contains="owner token")
    assert_error(control(client, created, token="wrong", action="next"), 403)
    assert client.get(f"/api/events/{created['id']}/").json()["state"]["active"] is None


@pytest.mark.parametrize(
    "body",
    [{"action": "dance"}, {"action": "open", "seconds": 4}, {"action": "open", "seconds": 3601}, {}],
)
def test_control_refuses_a_bad_action_with_400(client, body):
    created = create(client)
    control(client, created, action="next")
    assert_error(control(client, created, **body), 400)


def test_an_action_that_cannot_apply_is_400_with_the_reason(client):
    created = create(client)
    assert_error(control(client, created, action="open"), 400, detail_contains="No question is on screen")


def test_a_question_takes_api_votes_only_while_active_and_open(client):
    created = create(client)
    question = created["questions"][0]
    vote = {"poll": question["id"], "choices": [question["choices"][0]["id"]], "voter": "phone-1"}
    assert_error(post_json(client, "/api/votes/", vote), 403, detail_contains="not open")
    control(client, created, action="next")
    assert_error(post_json(client, "/api/votes/", vote), 403, detail_contains="not open")
    control(client, created, action="open")
    assert post_json(client, "/api/votes/", vote).status_code == 201
    control(client, created, action="close")
    assert_error(post_json(client, "/api/votes/", vote | {"voter": "phone-2"}), 403, detail_contains="not open")
    assert Ballot.objects.count() == 1


def test_results_of_a_question_are_403_until_revealed(client):
    created = create(client)
    question = created["questions"][0]
    control(client, created, action="next")
    assert_error(client.get(f"/api/polls/{question['id']}/results/"), 403, detail_contains="presenter")
    control(client, created, action="reveal")
    assert client.get(f"/api/polls/{question['id']}/results/").status_code == 200


def test_the_schema_documents_the_events_calls_and_the_bearer_token(client):
    schema = client.get("/api/schema/?format=json").json()
    assert {"/api/events/", "/api/events/{id}/", "/api/events/{id}/control/"} <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["ownerToken"] == {"type": "http", "scheme": "bearer"}
    assert schema["paths"]["/api/events/{id}/control/"]["post"]["security"] == [{"ownerToken": []}]


def test_a_poll_cannot_be_created_with_the_presenter_visibility(client):
    body = {"question": "Q?", "choices": ["A", "B"], "results_visibility": "presenter"}
    assert_error(post_json(client, "/api/polls/", body), 400, field="results_visibility")
