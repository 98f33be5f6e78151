"""Events against the real database: creating one, the presenter's actions, and the vote rule they set."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.test import TestCase
from django.utils import timezone

from polls import events, selectors, services, upkeep
from polls.events import QuestionInput
from polls.models import Event, Poll

pytestmark = pytest.mark.django_db

QUESTIONS = [
    QuestionInput(question="Tea or coffee?", choices=["Tea", "Coffee"]),
    QuestionInput(question="Best talk?", choices=["Keynote", "Panel", "Demo"], max_choices=2),
    QuestionInput(question="Come back next year?", choices=["Yes", "No"]),
]


def make_event(questions=QUESTIONS) -> tuple[Event, list[Poll], str]:
    return events.event_create(title="All-hands", questions=questions)


def control(event: Event, action: str, **kwargs) -> Event:
    with TestCase.captureOnCommitCallbacks(execute=True):
        return events.event_control(event=event, action=action, **kwargs)


def fresh(poll: Poll) -> Poll:
    return selectors.poll_get(slug=poll.slug)  # through the poll cache, as every vote reads it


def cast(poll: Poll, choice: int = 0, voter: str = "phone-1"):
    picked = list(fresh(poll).choices.all())[choice]
    with TestCase.captureOnCommitCallbacks(execute=True):
        return services.vote_cast(poll=fresh(poll), choice_ids=[picked.id], voter_key=voter, ip_address=None)


def test_a_new_event_waits_with_its_questions_in_order_closed_and_results_kept_for_the_presenter():
    event, questions, token = make_event()
    assert len(event.code) == 6 and event.code.isdigit()
    assert event.owner_token_matches(token) and event.question_count == 3
    assert [poll.question for poll in questions] == ["Tea or coffee?", "Best talk?", "Come back next year?"]
    assert [poll.event_position for poll in questions] == [0, 1, 2]
    assert all(poll.owner_token_matches(token) for poll in questions)  # one link runs every question
    assert all(not poll.is_open() for poll in questions)
    assert events.event_state(event=event).as_dict() == {
        "active": None,
        "index": None,
        "phase": "waiting",
        "closes_at": None,
        "reveal": False,
        "ended": False,
        "version": 1,
    }


def test_a_question_with_bad_input_is_named_in_the_error_and_nothing_is_saved():
    bad = [QUESTIONS[0], QuestionInput(question="Only one?", choices=["Lonely"])]
    with pytest.raises(ValidationError) as error:
        make_event(bad)
    assert error.value.message_dict["questions"] == ["Question 2: choices: Give at least 2 choices."]
    assert not Event.objects.exists() and not Poll.objects.exists()


@pytest.mark.parametrize("count", [0, 51])
def test_an_event_has_1_to_50_questions(count):
    with pytest.raises(ValidationError, match="1 to 50 questions"):
        make_event([QUESTIONS[0]] * count)


def test_a_question_takes_votes_only_while_active_and_open():
    event, (first, second, _), _ = make_event()
    with pytest.raises(services.QuestionNotOpen, match="not open"):
        cast(first)
    event = control(event, "next")
    with pytest.raises(services.QuestionNotOpen):
        cast(first)  # shown, not open yet
    event = control(event, "open")
    cast(first)
    with pytest.raises(services.QuestionNotOpen):
        cast(second, voter="phone-2")  # not the active one
    event = control(event, "close")
    with pytest.raises(services.QuestionNotOpen):
        cast(first, voter="phone-2")
    control(event, "open")
    cast(first, voter="phone-2")  # opened again
    assert selectors.poll_results(poll=fresh(first)).total == 2


def test_moving_on_closes_the_question_left_behind():
    event, (first, second, _), _ = make_event()
    event = control(control(event, "next"), "open")
    event = control(event, "next")
    assert events.event_state(event=event).active == second.slug
    with pytest.raises(services.QuestionNotOpen):
        cast(first)
    assert events.event_state(event=event).phase == "waiting"


def test_a_window_closes_the_question_by_the_clock():
    event, (first, *_), _ = make_event()
    event = control(control(event, "next"), "open", seconds=5)
    state = events.event_state(event=event)
    assert state.phase == "open" and state.closes_at == fresh(first).closes_at
    later = timezone.now() + timedelta(seconds=6)
    assert events.event_state(event=event, now=later).phase == "closed"
    assert not fresh(first).is_open(later)


@pytest.mark.parametrize("seconds", [4, 3601, True])
def test_a_window_lasts_5_to_3600_seconds(seconds):
    event, _, _ = make_event()
    event = control(event, "next")
    with pytest.raises(ValidationError, match="5 to 3600 seconds"):
        control(event, "open", seconds=seconds)


def test_results_reach_the_audience_only_while_revealed():
    event, (first, *_), _ = make_event()
    event = control(control(control(event, "next"), "open"), "close")
    hidden = selectors.poll_results_for_viewer(poll=fresh(first), has_voted=True)
    assert hidden.results is None and "presenter" in hidden.hidden_reason  # closed, yet not revealed
    assert selectors.poll_results_for_viewer(poll=fresh(first), is_owner=True).results is not None
    event = control(event, "reveal")
    assert selectors.poll_results_for_viewer(poll=fresh(first)).results is not None
    control(event, "hide")
    assert selectors.poll_results_for_viewer(poll=fresh(first)).results is None


def test_goto_previous_and_the_ends_of_the_list():
    event, (first, second, third), _ = make_event()
    with pytest.raises(ValidationError, match="No question is on screen"):
        control(event, "open")
    with pytest.raises(ValidationError, match="nothing before"):
        control(event, "previous")
    event = control(event, "goto", question=third.slug)
    with pytest.raises(ValidationError, match="last question"):
        control(event, "next")
    event = control(event, "previous")
    assert events.event_state(event=event).index == 1
    with pytest.raises(ValidationError, match="one of this event's questions"):
        control(event, "goto", question="nope")
    with pytest.raises(ValidationError, match="Unknown action"):
        control(event, "dance")


def test_every_change_of_state_raises_the_version():
    event, _, _ = make_event()
    versions = [event.version]
    for action in ["next", "open", "reveal", "hide", "close", "next"]:
        event = control(event, action)
        versions.append(event.version)
    assert versions == sorted(set(versions))


def test_ending_closes_every_question_and_frees_the_code_for_a_new_event():
    event, questions, _ = make_event()
    event = control(control(event, "next"), "open")
    event = control(event, "end")
    assert events.event_state(event=event).ended
    assert not any(fresh(poll).is_open() for poll in questions)
    with pytest.raises(ValidationError, match="ended"):
        control(event, "next")
    again = Event(title="Next day", owner_token_hash="x", code=event.code)
    again.save()  # the code is free again
    assert events.event_get_by_code(code=event.code) == again


def test_two_running_events_never_share_a_code():
    event, _, _ = make_event()
    with pytest.raises(IntegrityError):
        Event(title="Clash", owner_token_hash="x", code=event.code).save()


def test_the_picks_of_a_phone_are_read_per_question():
    event, (first, second, _), _ = make_event()
    event = control(control(event, "next"), "open")
    cast(first, choice=1, voter="phone-1")
    event = control(control(event, "next"), "open")
    picks = events.event_voter_picks(event_id=event.id, voter_key="phone-1")
    assert picks == {first.id: 0b10}
    assert events.mine_positions(0b10) == "p1"
    assert events.event_voter_picks(event_id=event.id, voter_key="someone-else") == {}


def test_owner_actions_of_a_plain_poll_leave_the_vote_rule_of_events_alone():
    """A question's own owner page must not reopen what its presenter closed."""
    event, (first, *_), token = make_event()
    with pytest.raises(ValidationError, match="presenter"):
        services.poll_reopen(poll=fresh(first))


def test_an_event_left_running_for_the_archive_period_is_ended_and_its_code_freed(settings):
    settings.POLL_ARCHIVE_AFTER_DAYS = 30
    idle, _, _ = make_event()
    busy, _, _ = make_event()
    control(busy, "next")
    Event.objects.filter(pk=idle.pk).update(changed_at=timezone.now() - timedelta(days=31))
    Event.objects.filter(pk=busy.pk).update(changed_at=timezone.now() - timedelta(days=29))
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert upkeep.events_end_idle() == 1
    assert Event.objects.get(pk=idle.pk).ended_at is not None
    assert Event.objects.get(pk=busy.pk).ended_at is None
    assert upkeep.events_end_idle() == 0  # nothing left to end
