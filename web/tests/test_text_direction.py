"""Right-to-left and mixed scripts (issue 19, point 8): every piece of a visitor's text on every page
sits in an element with `dir="auto"`, so an Arabic or Hebrew question reads right to left, and a
Latin one next to it left to right."""

from html.parser import HTMLParser

import pytest
from django.test import Client, TestCase

from polls import events, services
from polls.events import QuestionInput

pytestmark = pytest.mark.django_db

QUESTION = "איזה שפה אתם מעדיפים?"
CHOICES = ["עברית", "العربية", "English"]


class _TextPlaces(HTMLParser):
    """Collects, for every text node holding one of `needles`, whether it or its parent has dir="auto"."""

    def __init__(self, needles):
        super().__init__(convert_charrefs=True)
        self.needles, self.stack, self.found = needles, [], []

    def handle_starttag(self, tag, attrs):
        if tag not in ("input", "img", "br", "meta", "link", "wbr", "rect"):
            self.stack.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        while self.stack and self.stack.pop()[0] != tag:
            pass

    def handle_data(self, data):
        if any(needle in data for needle in self.needles) and not any(tag == "title" for tag, _ in self.stack):
            near = self.stack[-2:]
            self.found.append((data.strip()[:30], any(attrs.get("dir") == "auto" for _, attrs in near)))


def places(html: str) -> list[tuple[str, bool]]:
    parser = _TextPlaces([QUESTION, *CHOICES])
    parser.feed(html)
    return parser.found


def assert_every_place_has_dir_auto(html: str, page: str) -> None:
    found = places(html)
    assert found, f"{page} shows none of the poll's text"
    assert all(ok for _, ok in found), (page, [text for text, ok in found if not ok])


def test_every_page_of_a_poll_marks_its_text_dir_auto(django_capture_on_commit_callbacks):
    poll, token = services.poll_create(question=QUESTION, choices=CHOICES)
    client = Client()
    for path in ("", "results/", "live/", "live/?overlay=1", f"manage/{token}/", f"manage/{token}/delete/"):
        assert_every_place_has_dir_auto(client.get(f"/p/{poll.slug}/{path}").content.decode(), path or "poll")


def test_every_screen_of_an_event_marks_its_text_dir_auto():
    event, _, token = events.event_create(title="כנס", questions=[QuestionInput(question=QUESTION, choices=CHOICES)])
    with TestCase.captureOnCommitCallbacks(execute=True):
        for action in ("next", "open", "reveal"):
            event = events.event_control(event=event, action=action)
    client = Client()
    for path in ("", "live/", f"manage/{token}/"):
        assert_every_place_has_dir_auto(client.get(f"/e/{event.code}/{path}").content.decode(), path or "phone")
