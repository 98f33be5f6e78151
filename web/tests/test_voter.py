"""The voter cookie: signed, random enough, and out of reach of scripts and other sites."""

import base64

import pytest
from django.conf import settings
from django.test import Client, RequestFactory

from polls import services
from polls.models import Ballot
from polls.voters import client_address, voter_key_from_cookies
from web.tests.conftest import HTMX

pytestmark = pytest.mark.django_db

COOKIE = settings.VOTER_COOKIE_NAME


def key_in(cookie_value: str) -> str | None:
    """What the site reads back from a cookie value: the key if the signature holds, else None."""
    return voter_key_from_cookies({COOKIE: cookie_value})


def first_vote(client: Client, poll, **extra):
    return client.post(poll.url("vote/"), {"choice": [poll.choice_ids[0]]}, **extra)


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_a_first_vote_sets_a_signed_httponly_samesite_lax_cookie(client, poll, headers):
    cookie = first_vote(client, poll, **headers).cookies[COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert not cookie["secure"]
    assert cookie["max-age"] == settings.VOTER_COOKIE_MAX_AGE
    assert Ballot.objects.get().voter_key == key_in(cookie.value)


def test_the_voter_key_holds_at_least_128_random_bits(poll):
    keys = set()
    for _ in range(20):
        cookie = first_vote(Client(), poll).cookies[COOKIE]
        key = key_in(cookie.value)
        assert len(base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))) >= 16
        keys.add(key)
    assert len(keys) == 20


def test_the_cookie_is_secure_over_https(poll):
    cookie = first_vote(Client(), poll, secure=True).cookies[COOKIE]
    assert cookie["secure"] is True


def test_a_returning_voter_keeps_the_same_cookie(client, poll, make_poll):
    first_vote(client, poll)
    other = make_poll(question="Second poll?")
    response = first_vote(client, other)
    assert COOKIE not in response.cookies
    keys = set(Ballot.objects.values_list("voter_key", flat=True))
    assert len(keys) == 1


def test_a_forged_cookie_is_ignored_and_replaced(client, poll):
    first_vote(client, poll)
    stolen_key = Ballot.objects.get().voter_key
    forger = Client()
    forger.cookies[COOKIE] = f"{stolen_key}:forged-signature"
    response = first_vote(forger, poll)
    assert response.status_code == 302
    assert Ballot.objects.count() == 2
    assert key_in(f"{stolen_key}:forged-signature") is None
    assert key_in(response.cookies[COOKIE].value) not in (None, stolen_key)


def test_viewing_a_poll_sets_no_cookie(client, poll):
    response = client.get(poll.url())
    assert COOKIE not in response.cookies


# --- The client's address ----------------------------------------------------------------


def address_of(settings, header: str, **meta) -> str | None:
    settings.CLIENT_IP_HEADER = header
    return client_address(RequestFactory().get("/", **meta).META)


def test_proxy_headers_are_ignored_unless_client_ip_header_names_one(settings):
    forged = {"REMOTE_ADDR": "203.0.113.7", "HTTP_X_FORWARDED_FOR": "198.51.100.1", "HTTP_X_REAL_IP": "198.51.100.2"}
    assert address_of(settings, "", **forged) == "203.0.113.7"
    assert address_of(settings, "HTTP_X_REAL_IP", **forged) == "198.51.100.2"


def test_of_a_forwarded_list_only_the_entry_our_proxy_added_counts(settings):
    meta = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "198.51.100.1, 203.0.113.7"}
    assert address_of(settings, "HTTP_X_FORWARDED_FOR", **meta) == "203.0.113.7"


def test_text_that_is_not_an_ip_address_is_never_used_as_one(settings):
    assert address_of(settings, "HTTP_X_REAL_IP", REMOTE_ADDR="127.0.0.1", HTTP_X_REAL_IP="not-an-ip") == "127.0.0.1"
    assert address_of(settings, "", REMOTE_ADDR="not-an-ip") is None
    assert address_of(settings, "", REMOTE_ADDR=" 2001:DB8::1 ") == "2001:db8::1"


def test_an_invalid_forwarded_address_does_not_get_around_one_ballot_per_address(settings, client):
    settings.CLIENT_IP_HEADER = "HTTP_X_REAL_IP"
    poll, _ = services.poll_create(question="Q?", choices=["A", "B"], dedupe="ip")
    body = {"poll": poll.slug, "choices": [poll.choices.first().id]}
    answers = [
        client.post("/api/votes/", body | {"voter": voter}, content_type="application/json", HTTP_X_REAL_IP=text)
        for voter, text in (("one", "not-an-ip"), ("two", "also-not-an-ip"))
    ]
    assert [answer.status_code for answer in answers] == [201, 409]
