"""A poll's join code on the big screen and in the landing page's join box (issue 19, point 7)."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_the_join_box_takes_a_polls_code_to_its_page(poll):
    code = poll.poll.code
    response = Client().get("/join/", {"code": f"{code[:3]} {code[3:]}"})
    assert (response.status_code, response["Location"]) == (302, f"/p/{poll.slug}/")


def test_the_big_screen_shows_the_polls_code_but_the_overlay_does_not(poll):
    code = poll.poll.code
    kiosk = Client().get(poll.url("live/")).content.decode()
    assert f'aria-label="Join code {code}">{code[:3]}&nbsp;{code[3:]}<' in kiosk
    assert "or type the code at" in kiosk
    assert "Join code" not in Client().get(poll.url("live/?overlay=1")).content.decode()


def test_the_api_answers_a_polls_code(poll):
    assert Client().get(f"/api/polls/{poll.slug}/").json()["code"] == poll.poll.code
