"""Events: a presenter's sequence of questions behind one join code. Writes and reads.

An event's questions are polls. What the presenter decides is written onto them, in the same
transaction as the event's state, so every rule that already holds for polls holds for them:
- a question takes votes only while it is active and open: the others are `closed`, the open one
  has its window as `closes_at` (`services.vote_cast` says "not open" for them);
- its results are seen by phones and the big screen only once revealed: `results_visibility` is
  `presenter` until then, `always` after (`selectors.results_visible`);
- each change saves the polls it touches, which makes their cached copies stale at once
  (`polls.poll_cache`), and marks the active question changed after the commit, so the broadcaster
  pushes the new state to every screen on its next tick (`realtime.event_live`).
"""

import logging
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from polls.join_codes import join_code_claim
from polls.models import EVENT_MAX_QUESTIONS, Ballot, Event, Poll, hash_owner_token
from polls.presence import event_phones_connected as event_phones_connected
from polls.ratelimit import rate_limit_check
from polls.records import polls_with_choices
from polls.selectors import PollResults, poll_get, poll_results
from polls.selectors import mine_positions as mine_positions  # the phones' marks, as on a poll's page
from polls.services import PollFields, poll_draft, poll_draft_save
from polls.tallies.changes import tally_mark_changed

logger = logging.getLogger(__name__)

ACTIONS = ("next", "previous", "goto", "open", "close", "reveal", "hide", "end")
WINDOW_MIN_SECONDS = 5
WINDOW_MAX_SECONDS = 3600


@dataclass(frozen=True)
class QuestionInput:
    """One question as a creator gives it: the `PollFields` an event lets them choose (its presenter
    opens, closes and reveals it)."""

    question: str
    choices: Sequence[str] = ()
    description: str = ""
    max_choices: int = 1
    dedupe: str = Poll.Dedupe.BROWSER
    kind: str = Poll.Kind.CHOICE
    scale_min: int | None = None
    scale_max: int | None = None
    scale_labels: Sequence[str] = ()
    max_words: int | None = None
    profanity_filter: bool = False


def event_create(
    *, title: str, questions: Sequence[QuestionInput], ip_address: str | None = None
) -> tuple[Event, list[Poll], str]:
    """Creates an event and its questions (closed, results hidden, waiting for the presenter);
    returns the event, its questions in order and the owner token, shown only now.

    Raises `ValidationError` ("questions" carries "Question 2: …") and `RateLimited` (one creation).
    """
    title = (title or "").strip()
    if not title:
        raise ValidationError({"title": "Give the event a title."})
    if not 1 <= len(questions) <= EVENT_MAX_QUESTIONS:
        raise ValidationError({"questions": f"An event has 1 to {EVENT_MAX_QUESTIONS} questions."})
    owner_token = secrets.token_urlsafe(32)
    token_hash = hash_owner_token(owner_token)
    drafts = [_question_draft(number, question, token_hash) for number, question in enumerate(questions, start=1)]
    event = Event(title=title, owner_token_hash=token_hash, question_count=len(drafts))
    event.full_clean(exclude=["slug", "code", "active"])
    rate_limit_check(action="create", ip_address=ip_address)
    with transaction.atomic():
        event.code = join_code_claim()
        event.save()
        polls = []
        for position, draft in enumerate(drafts):
            draft.poll.event, draft.poll.event_position = event, position
            polls.append(poll_draft_save(draft))
    return event, polls, owner_token


def _question_draft(number: int, question: QuestionInput, token_hash: str):
    try:
        fields = PollFields(**asdict(question), results_visibility=Poll.Visibility.PRESENTER)
        # The presenter's link also opens each question's owner page: one token.
        draft = poll_draft(fields, owner_token_hash=token_hash)
    except ValidationError as error:
        messages = [
            f"{field}: {text}" if field != "__all__" else text for field, texts in _fields(error) for text in texts
        ]
        raise ValidationError({"questions": [f"Question {number}: {message}" for message in messages]}) from None
    draft.poll.closed = True  # waiting for the presenter
    return draft


def _fields(error: ValidationError) -> list[tuple[str, list[str]]]:
    if hasattr(error, "error_dict"):
        return [
            (field, [str(text) for text in ValidationError(texts).messages])
            for field, texts in error.error_dict.items()
        ]
    return [("__all__", error.messages)]


def event_control(*, event: Event, action: str, question: str | None = None, seconds: int | None = None) -> Event:
    """Applies one of the presenter's `ACTIONS`; returns the event in its new state.

    Raises `ValidationError` for an action that cannot apply (an unknown one, "next" after the last
    question, "open" with no question on screen, an ended event). Runs with the event's row locked,
    so two presenters' clicks apply one after the other.
    """
    if action not in ACTIONS:
        raise ValidationError({"action": f"Unknown action {action!r}: use one of {', '.join(ACTIONS)}."})
    with transaction.atomic():
        event = Event.objects.select_for_update().get(pk=event.pk)
        if event.ended_at is not None:
            raise ValidationError({"action": "This event has ended."})
        questions = list(event.questions.order_by("event_position"))
        touched = _apply(event, questions, action=action, question=question, seconds=seconds)
        event.version += 1
        event.changed_at = timezone.now()
        event.save()
        for poll in touched:
            poll.save(
                update_fields=["closed", "closes_at", "opens_at", "results_visibility", "archived_at", "active_at"]
            )
        # The broadcaster pushes an event when its active question changed; the one left behind gets
        # its closed state pushed to its own viewers too.
        changed = {poll.id: poll for poll in questions if poll in touched or poll.id == event.active_id}
        transaction.on_commit(lambda: [tally_mark_changed(poll=poll) for poll in changed.values()])
    return event


def _apply(
    event: Event, questions: list[Poll], *, action: str, question: str | None, seconds: int | None
) -> list[Poll]:
    """Changes `event` (unsaved) and the questions whose fields follow it; returns those questions."""
    now = timezone.now()
    active = next((poll for poll in questions if poll.id == event.active_id), None)
    match action:
        case "next" | "previous" | "goto":
            target = _target(questions, active, action=action, question=question)
            touched = [_shut(active, now)] if active is not None and active is not target else []
            event.active, event.phase, event.closes_at, event.reveal = target, Event.Phase.WAITING, None, False
            target.results_visibility = Poll.Visibility.PRESENTER
            return [*touched, _shut(target, now)]
        case "end":
            event.ended_at, event.phase, event.closes_at = now, Event.Phase.CLOSED, None
            return [_shut(poll, now) for poll in questions if not poll.closed or poll.id == event.active_id]
    if active is None:
        raise ValidationError({"action": "No question is on screen yet: go to the first one with 'next'."})
    match action:
        case "open":
            window = _window(seconds)
            active.closed, active.opens_at, active.archived_at, active.active_at = False, None, None, now
            active.closes_at = now + window if window else None
            event.phase, event.closes_at = Event.Phase.OPEN, active.closes_at
        case "close":
            _shut(active, now)
            event.phase = Event.Phase.CLOSED
        case "reveal" | "hide":
            event.reveal = action == "reveal"
            active.results_visibility = Poll.Visibility.ALWAYS if event.reveal else Poll.Visibility.PRESENTER
    return [active]


def _target(questions: list[Poll], active: Poll | None, *, action: str, question: str | None) -> Poll:
    if action == "goto":
        found = next((poll for poll in questions if poll.slug == question), None)
        if found is None:
            raise ValidationError({"question": "Name one of this event's questions by its id (slug)."})
        return found
    position = -1 if active is None else active.event_position
    position += 1 if action == "next" else -1
    if active is None and action == "previous":
        raise ValidationError({"action": "No question is on screen yet: there is nothing before it."})
    if not 0 <= position < len(questions):
        raise ValidationError(
            {"action": "This is the last question." if action == "next" else "This is the first question."}
        )
    return questions[position]


def _shut(poll: Poll, now: datetime) -> Poll:
    """A question off screen or closed: no votes, results hidden again unless revealed later."""
    poll.closed = True
    poll.active_at = now
    if poll.closes_at and poll.closes_at > now:
        poll.closes_at = now
    return poll


def _window(seconds: int | None) -> timedelta | None:
    if seconds is None:
        return None
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int)
        or not WINDOW_MIN_SECONDS <= seconds <= WINDOW_MAX_SECONDS
    ):
        raise ValidationError(
            {"seconds": f"A vote window lasts {WINDOW_MIN_SECONDS} to {WINDOW_MAX_SECONDS} seconds (or leave it out)."}
        )
    return timedelta(seconds=seconds)


# --- Reads ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventState:
    """The state every screen shows, as the API answers it."""

    active: str | None
    index: int | None
    phase: str
    closes_at: datetime | None
    reveal: bool
    ended: bool
    version: int

    def as_dict(self) -> dict:
        return asdict(self)


def event_state(*, event: Event, active: Poll | None = None, now: datetime | None = None) -> EventState:
    """`active` saves a query when the caller holds the active question."""
    if active is None and event.active_id is not None:
        active = Poll.objects.only("slug", "event_position").get(pk=event.active_id)
    phase = event.phase_at(now)
    return EventState(
        active=active.slug if active else None,
        index=active.event_position if active else None,
        phase=phase,
        closes_at=event.closes_at if phase == Event.Phase.OPEN else None,
        reveal=event.reveal,
        ended=event.ended_at is not None,
        version=event.version,
    )


def event_get(*, slug: str) -> Event:
    return Event.objects.get(slug=slug)


def event_get_by_code(*, code: str) -> Event:
    """The event running under `code`, else the latest that ended under it (its phones see "ended").
    Raises `Event.DoesNotExist`."""
    code = (code or "").strip().replace(" ", "")
    # Running first (NULLs first), then the latest ended.
    found = Event.objects.filter(code=code).order_by(F("ended_at").desc(nulls_first=True), "-created_at").first()
    if found is None:
        raise Event.DoesNotExist
    return found


def event_get_for_owner(*, code: str, token: str) -> Event:
    """Raises `Event.DoesNotExist` for an unknown code or a wrong token, alike."""
    event = event_get_by_code(code=code)
    if not event.owner_token_matches(token):
        raise Event.DoesNotExist
    return event


def event_question(*, event: Event, slug: str) -> Poll:
    """One of the event's questions, as every vote reads a poll (the poll cache); raises
    `Poll.DoesNotExist` for an unknown or malformed id, or a poll of another event."""
    poll = poll_get(slug=slug)
    if poll.event_id != event.id:
        raise Poll.DoesNotExist
    return poll


def event_questions(*, event: Event) -> list[Poll]:
    """The event's questions in order, with their choices (two queries)."""
    polls = polls_with_choices(poll_ids=event.questions.values_list("id", flat=True))
    return sorted(polls, key=lambda poll: poll.event_position)


def event_voter_picks(*, event_id: int, voter_key: str | None) -> dict[int, int]:
    """What this browser picked in each question of the event it answered: poll id -> choice bit mask.
    One query; a question without duplicate protection keeps the voter's first ballot."""
    if not voter_key:
        return {}
    mine = Q(voter_key=voter_key) | Q(voter_key__startswith=f"{voter_key}~")
    ballots = (
        Ballot.objects.filter(mine, poll__event_id=event_id)
        .order_by("-submitted_at")
        .values_list("poll_id", "choice_mask")
    )
    return dict(ballots)


@dataclass(frozen=True)
class EventDisplay:
    """What the event's screens show, from one read of its state (`seen` says what each may see)."""

    event: Event
    state: EventState
    question: Poll | None  # the active one, with its choices
    results: PollResults | None

    @property
    def question_number(self) -> int | None:
        return None if self.state.index is None else self.state.index + 1

    # For the presenter's buttons: what an action would refuse.
    @property
    def is_first(self) -> bool:
        return not self.state.index

    @property
    def is_last(self) -> bool:
        return self.state.index is not None and self.state.index + 1 >= self.event.question_count

    @property
    def is_not_open(self) -> bool:
        return self.state.phase != Event.Phase.OPEN

    def seen(self, *, presenter: bool) -> tuple[PollResults | None, int]:
        """What one kind of screen shows of the results, and its version: the presenter always sees the
        results; the phones and the big screen once revealed. The version grows with every change of
        state (`event.version`, the high bits) and, where results are shown, with every ballot counted
        (the tally's version, the low bits): a screen never goes back."""
        results = self.results if presenter or self.state.reveal else None
        return results, (self.event.version << 32) + (results.version if results else 0)


def event_display(
    *, event: Event, question: Poll | None = None, results: PollResults | None = None, now: datetime | None = None
) -> EventDisplay:
    """`question` and `results` save the reads when the caller holds them (the broadcaster does)."""
    if question is None and event.active_id is not None:
        question = poll_get(slug=Poll.objects.values_list("slug", flat=True).get(pk=event.active_id))
    if question is not None and results is None:
        results = poll_results(poll=question)
    return EventDisplay(
        event=event, state=event_state(event=event, active=question, now=now), question=question, results=results
    )


def events_showing(*, poll_ids) -> list[Event]:
    """The events whose question on screen is one of `poll_ids` (one query; for the broadcaster)."""
    return list(Event.objects.filter(active_id__in=list(poll_ids)))
