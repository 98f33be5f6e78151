"""When the database does not answer, people and programs get 503 with Retry-After, never a 500."""

import pytest
from django.db import OperationalError

from crowdtick.db_backend.breaker import DatabaseUnavailable
from polls import selectors, services


@pytest.fixture
def poll(db):
    created, _ = services.poll_create(question="Which talk should open the day?", choices=["Databases", "Browsers"])
    return selectors.poll_get(slug=created.slug)


@pytest.fixture
def frozen_database(monkeypatch):
    def fail(**kwargs):
        raise OperationalError("timeout expired")

    monkeypatch.setattr(services, "vote_cast", fail)


def test_an_api_vote_while_the_database_is_frozen_gets_503_json_with_retry_after(client, poll, frozen_database):
    choice = poll.choices.first()
    response = client.post(
        "/api/votes/", {"poll": poll.slug, "choices": [choice.id], "voter": "alice"}, content_type="application/json"
    )
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert set(response.json()) == {"detail"}
    assert "not answering" in response.json()["detail"]


def test_a_form_vote_while_the_database_is_frozen_gets_a_503_page_with_retry_after(client, poll, frozen_database):
    response = client.post(f"/p/{poll.slug}/vote/", {"choice": poll.choices.first().id})
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert b"<html" in response.content.lower() and b"try again in a few seconds" in response.content


def test_an_htmx_vote_while_the_database_is_frozen_gets_a_fragment_to_show(client, poll, frozen_database):
    response = client.post(f"/p/{poll.slug}/vote/", {"choice": poll.choices.first().id}, HTTP_HX_REQUEST="true")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert b"<html" not in response.content.lower() and b'role="alert"' in response.content


def test_an_open_breaker_answers_503_too(client, poll, monkeypatch):
    def fail(**kwargs):
        raise DatabaseUnavailable("not trying again yet")

    monkeypatch.setattr(selectors, "poll_get_with_tally", fail)  # what the poll page looks its poll up with
    response = client.get(f"/p/{poll.slug}/")
    assert response.status_code == 503 and response["Retry-After"] == "5"


def test_the_liveness_check_stays_up_while_the_database_is_down(client, monkeypatch):
    def fail(*args, **kwargs):
        raise OperationalError("timeout expired")

    monkeypatch.setattr("django.db.backends.base.base.BaseDatabaseWrapper.ensure_connection", fail)
    assert client.get("/healthz").status_code == 200
