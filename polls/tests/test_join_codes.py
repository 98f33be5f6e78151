"""Join codes (issue 19, point 7): every poll and event gets 6 digits from one code space."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.test import TestCase
from django.utils import timezone

from polls import events, join_codes, services, upkeep
from polls.events import QuestionInput
from polls.models import Event, Poll

pytestmark = pytest.mark.django_db


def make_poll() -> Poll:
    return services.poll_create(question="Q?", choices=["A", "B"])[0]


def make_event() -> Event:
    return events.event_create(title="E", questions=[QuestionInput(question="Q?", choices=["A", "B"])])[0]


def test_polls_and_events_draw_their_codes_from_one_space(monkeypatch):
    poll = make_poll()
    assert len(poll.code) == 6 and poll.code.isdigit()
    draws = iter([poll.code, "000777"])  # the poll's code first: taken, so drawn again
    monkeypatch.setattr(join_codes, "new_code", lambda: next(draws))
    event = make_event()
    assert event.code == "000777"
    draws = iter([event.code, "000778"])
    assert make_poll().code == "000778"


def test_an_events_questions_have_no_code_of_their_own():
    event = make_event()
    assert list(event.questions.values_list("code", flat=True)) == [None]


def test_two_open_polls_never_share_a_code():
    poll = make_poll()
    other = make_poll()
    with pytest.raises(IntegrityError), transaction.atomic():
        Poll.objects.filter(pk=other.pk).update(code=poll.code)


def test_the_join_target_is_a_running_event_then_an_open_poll_then_an_ended_event():
    poll = make_poll()
    assert join_codes.join_target(code=poll.code) == poll
    assert join_codes.join_target(code=f"{poll.code[:3]} {poll.code[3:]}") == poll
    assert join_codes.join_target(code="12345") is None and join_codes.join_target(code="abcdef") is None
    event = make_event()
    assert join_codes.join_target(code=event.code) == event


def test_archiving_gives_the_code_back_and_reopening_draws_a_new_one(settings):
    settings.POLL_ARCHIVE_AFTER_DAYS = 30
    poll = make_poll()
    Poll.objects.filter(pk=poll.pk).update(active_at=timezone.now() - timedelta(days=40))
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert upkeep.polls_archive_idle() == 1
    poll.refresh_from_db()
    assert poll.code is None
    services.poll_reopen(poll=poll)
    poll.refresh_from_db()
    assert poll.code and len(poll.code) == 6
