"""Fixtures for the HTML views: a poll with its owner token, and browsers with and without HTMX."""

from dataclasses import dataclass

import pytest
from django.test import Client

from polls import selectors, services
from polls.models import Poll

HTMX = {"HTTP_HX_REQUEST": "true"}


@dataclass
class OwnedPoll:
    poll: Poll
    token: str

    @property
    def slug(self) -> str:
        return self.poll.slug

    @property
    def choice_ids(self) -> list[int]:
        return [choice.id for choice in self.poll.choices.all()]

    def url(self, suffix: str = "") -> str:
        return f"/p/{self.slug}/{suffix}"

    def manage_url(self, suffix: str = "") -> str:
        return f"/p/{self.slug}/manage/{self.token}/{suffix}"


@pytest.fixture
def make_poll(db):
    def make(**kwargs) -> OwnedPoll:
        kwargs.setdefault("question", "Which talk should open the day?")
        kwargs.setdefault("choices", ["Databases", "Browsers", "Compilers"])
        poll, token = services.poll_create(**kwargs)
        return OwnedPoll(poll=selectors.poll_get(slug=poll.slug), token=token)

    return make


@pytest.fixture
def poll(make_poll) -> OwnedPoll:
    return make_poll()


@pytest.fixture
def other_browser() -> Client:
    """A second browser: its own cookie jar, so its own voter cookie."""
    return Client()
