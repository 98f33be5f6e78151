"""The create form's opening time (issue 19, point 11): the API had `opens_at`, the form now has it too."""

import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from polls.models import Poll

pytestmark = pytest.mark.django_db


def test_a_poll_created_with_an_opening_time_waits_for_it_read_in_the_browsers_zone():
    opens = (timezone.now() + timedelta(days=2)).astimezone(UTC).replace(second=0, microsecond=0)
    local = opens.astimezone(zoneinfo.ZoneInfo("Asia/Tokyo"))
    form = {
        "question": "Lunch?",
        "choices": ["Yes", "No"],
        "results_visibility": "always",
        "dedupe": "browser",
        "opens_at": local.strftime("%Y-%m-%dT%H:%M"),
        "tz": "Asia/Tokyo",
    }
    response = Client().post("/polls/new/", form)
    assert response.status_code == 302
    poll = Poll.objects.get()
    assert poll.opens_at == opens and not poll.is_open()
    page = Client().get(f"/p/{poll.slug}/").content.decode()
    assert "Not open yet" in page and "opens in" in page and 'name="choice"' not in page


def test_an_opening_after_the_deadline_is_refused_with_the_reason():
    soon = datetime.now(UTC) + timedelta(hours=1)
    form = {
        "question": "Lunch?",
        "choices": ["Yes", "No"],
        "results_visibility": "always",
        "dedupe": "browser",
        "opens_at": (soon + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "closes_at": soon.strftime("%Y-%m-%dT%H:%M"),
    }
    response = Client().post("/polls/new/", form)
    assert response.status_code == 400 and "must open before it closes" in response.content.decode()


def test_the_form_offers_the_opening_time():
    assert 'name="opens_at"' in Client().get("/").content.decode()
