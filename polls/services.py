"""Writes: every business rule that changes a poll or its ballots lives here.

Functions take keyword-only arguments and raise `django.core.exceptions.ValidationError`
(bad input, with a message per field) or a `VoteRejected` subclass (a vote that cannot count).
"""

import hashlib
import hmac
import logging
import os
import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import redis
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from polls.ballot_audit import BURST_WINDOW
from polls.ballot_box import ballot_insert
from polls.exports import poll_export_path, poll_export_release
from polls.join_codes import join_code_claim
from polls.models import (
    CHOICE_MAX_LENGTH,
    MAX_CHOICES,
    MIN_CHOICES,
    SCALE_DEFAULT_MAX,
    SCALE_DEFAULT_MIN,
    SCALE_HIGHEST,
    SCALE_LABEL_MAX_LENGTH,
    SCALE_LOWEST,
    VOTER_KEY_MAX_LENGTH,
    WORDS_DEFAULT_PER_BALLOT,
    WORDS_MAX_PER_BALLOT,
    Ballot,
    Choice,
    Poll,
    hash_owner_token,
)
from polls.poll_cache import poll_cache_prime
from polls.ratelimit import rate_limit_check
from polls.records import polls_with_choices, with_choices
from polls.redis_client import redis_for_poll
from polls.selectors import (
    ballots_csv_lines,
)
from polls.tallies.changes import tally_mark_changed
from polls.tallies.counts import tally_discard, tally_record_ballot, tally_start
from polls.tallies.reconcile import tally_mark_stale, tally_reconcile_many
from polls.vote_minutes import minute_counts_forget
from polls.voters import address_network
from polls.words import InvalidTerms, ballot_terms, terms_stored

logger = logging.getLogger(__name__)

# A void waits this long for a reconcile run that holds the lock (a run takes about a second), so
# the owner sees the corrected tally at once; past it, the runs to come correct it (a stale mark).
VOID_RECONCILE_WAIT_SECONDS = 5
VOID_REASON_BURST = "Burst from one network, voided by the owner"


class VoteRejected(Exception):
    """A vote that cannot be counted; `message` is shown to the voter as it is."""

    message = "This vote cannot be counted."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message


class PollClosed(VoteRejected):
    message = "This poll is closed: it no longer takes votes."


class PollNotOpenYet(PollClosed):
    message = "This poll is not open yet."


class QuestionNotOpen(PollClosed):
    message = "This question is not open: the presenter opens it for votes."


class InvalidChoices(VoteRejected):
    message = "Pick one of the poll's choices."


class InvalidValue(InvalidChoices):
    """A rating off its scale, or a vote of the wrong kind (a value for choices, choices for a scale)."""

    message = "Pick a value on the scale."


class InvalidWords(InvalidValue):
    """A word cloud's ballot without terms, with too many or too long, or terms sent to another kind."""

    message = "Type a word or a short phrase."


class VoterRequired(VoteRejected):
    message = "A voter key is required to vote in this poll."


class AlreadyVoted(VoteRejected):
    message = "You have already voted in this poll; your first vote counts."


class VoidUnavailable(Exception):
    """Ballots cannot be voided now: the tallies' store is unreachable, and would never hear of it."""

    message = "Voiding is unavailable for a moment (the live counts cannot be updated). Nothing was voided: try again."


@dataclass(frozen=True)
class CastBallot:
    poll: Poll
    choice_ids: list[int]
    voter_key: str
    choice_mask: int  # the chosen choices' bits, as the ballot stores them
    terms: list[str]  # a word cloud's, as typed and kept


@dataclass(frozen=True)
class PollFields:
    """What a poll's creator chooses: the create form, the API and an event's questions all give these."""

    question: str
    choices: Sequence[str] = ()
    description: str = ""
    max_choices: int = 1
    opens_at: datetime | None = None
    closes_at: datetime | None = None
    results_visibility: str = Poll.Visibility.ALWAYS
    dedupe: str = Poll.Dedupe.BROWSER
    kind: str = Poll.Kind.CHOICE
    scale_min: int | None = None
    scale_max: int | None = None
    scale_labels: Sequence[str] = ()
    max_words: int | None = None
    profanity_filter: bool = False


def poll_create(*, ip_address: str | None = None, **fields) -> tuple[Poll, str]:
    """Creates a poll and its choices from `PollFields` given by keyword; returns the poll and its
    owner token.

    The token is returned in clear only here: the record keeps its hash, so the creator must
    be shown the owner link now or never. Raises `RateLimited` once the creator's address made
    its share of polls (a valid poll only counts: a form sent back with an error does not).
    """
    owner_token = secrets.token_urlsafe(32)
    draft = poll_draft(PollFields(**fields), owner_token_hash=hash_owner_token(owner_token))
    rate_limit_check(action="create", ip_address=ip_address)
    with transaction.atomic():
        poll = poll_draft_save(draft)
    return poll, owner_token


@dataclass(frozen=True)
class PollDraft:
    """A poll checked and ready to save, with its choices' texts."""

    poll: Poll
    choice_texts: list[str]


def poll_draft(fields: PollFields, *, owner_token_hash: str) -> PollDraft:
    """Checks a new poll (raises `ValidationError` per field) without saving it: `poll_create` and
    `polls.events.event_create` save what it returns."""
    answers = _answers(fields)
    if fields.kind != Poll.Kind.WORDS:
        _validate_choices(answers.texts, max_choices=answers.max_choices)
    if fields.closes_at is not None and fields.closes_at <= timezone.now():
        raise ValidationError({"closes_at": "The deadline must be in the future."})
    if fields.opens_at is not None and fields.closes_at is not None and fields.opens_at >= fields.closes_at:
        raise ValidationError({"opens_at": "The poll must open before it closes."})
    poll = Poll(
        question=(fields.question or "").strip(),
        description=(fields.description or "").strip(),
        max_choices=answers.max_choices,
        opens_at=fields.opens_at,
        closes_at=fields.closes_at,
        results_visibility=fields.results_visibility,
        dedupe=fields.dedupe,
        kind=fields.kind,
        scale_min=answers.scale_min,
        scale_max=answers.scale_max,
        scale_low_label=answers.labels[0],
        scale_high_label=answers.labels[1],
        max_words=answers.max_words,
        profanity_filter=fields.profanity_filter and fields.kind == Poll.Kind.WORDS,
        owner_token_hash=owner_token_hash,
    )
    poll.full_clean(exclude=["slug", "event"])
    return PollDraft(poll=poll, choice_texts=answers.texts)


@dataclass(frozen=True)
class _Answers:
    texts: list[str]  # the choices' texts: a scale's are its values
    max_choices: int
    scale_min: int | None = None
    scale_max: int | None = None
    labels: tuple[str, str] = ("", "")
    max_words: int | None = None


def _answers(fields: PollFields) -> _Answers:
    """What voters will pick from: the creator's choices, a scale's values from min to max, or nothing
    (a word cloud's voters type their answers)."""
    texts = [text.strip() for text in fields.choices if text and text.strip()]
    scale_fields = fields.scale_min is not None or fields.scale_max is not None or any(fields.scale_labels)
    if fields.kind != Poll.Kind.SCALE and scale_fields:
        raise ValidationError({"kind": "Only a rating scale (kind 'scale') has a range and end labels."})
    if fields.kind != Poll.Kind.WORDS and fields.max_words is not None:
        raise ValidationError({"max_words": "Only a word cloud (kind 'words') takes 'max_words'."})
    if fields.kind == Poll.Kind.WORDS:
        return _word_cloud_answers(fields, texts)
    if fields.kind == Poll.Kind.CHOICE:
        return _Answers(texts=texts, max_choices=fields.max_choices)
    if texts:
        raise ValidationError({"choices": "A rating scale has no choices: its values are what voters pick."})
    low = SCALE_DEFAULT_MIN if fields.scale_min is None else fields.scale_min
    high = SCALE_DEFAULT_MAX if fields.scale_max is None else fields.scale_max
    labels = _scale_labels(fields.scale_labels)
    if not SCALE_LOWEST <= low < high <= SCALE_HIGHEST:
        raise ValidationError(
            {"scale_max": f"A scale runs from {SCALE_LOWEST} to {SCALE_HIGHEST} at most, its top above its bottom."}
        )
    values = [str(value) for value in range(low, high + 1)]
    return _Answers(texts=values, max_choices=1, scale_min=low, scale_max=high, labels=labels)


def _word_cloud_answers(fields: PollFields, texts: list[str]) -> _Answers:
    if texts:
        raise ValidationError({"choices": "A word cloud has no choices: its voters type their answers."})
    max_words = WORDS_DEFAULT_PER_BALLOT if fields.max_words is None else fields.max_words
    if not 1 <= max_words <= WORDS_MAX_PER_BALLOT:
        raise ValidationError({"max_words": f"Voters can send 1 to {WORDS_MAX_PER_BALLOT} words each."})
    return _Answers(texts=[], max_choices=1, max_words=max_words)


def poll_draft_save(draft: PollDraft) -> Poll:
    """Saves a checked poll and its choices; runs inside the caller's transaction. Once it commits, the
    poll's copy and empty tally go to Redis, so its first voters and readers never reach the database."""
    poll = draft.poll
    if poll.event_id is None:  # an event's question is joined by its event's code
        poll.code = join_code_claim()
    poll.save()
    choices = Choice.objects.bulk_create(
        Choice(poll=poll, text=text, position=i) for i, text in enumerate(draft.choice_texts)
    )
    transaction.on_commit(lambda: _poll_created(with_choices(poll, choices)))
    return poll


def _poll_created(poll: Poll) -> None:
    """After a new poll's commit, in one Redis round trip: its copy for every process and its empty
    tally, so neither its first voters nor its first readers reach the database for it."""
    client = redis_for_poll(poll)  # its shard: the copy and the tally are read together there
    if client is None:
        return
    try:
        pipeline = client.pipeline(transaction=False)
        poll_cache_prime(poll, pipeline=pipeline)
        tally_start(poll, pipeline=pipeline)
        pipeline.execute()
    except redis.RedisError:
        logger.warning("Redis unavailable: new poll %s not cached; its first reader loads and counts it", poll.slug)


def _scale_labels(given: Sequence[str]) -> tuple[str, str]:
    labels = [(label or "").strip() for label in given] or ["", ""]
    if len(labels) != 2:
        raise ValidationError(
            {"scale_labels": "Give two labels, for the low end and the high end (either may be empty)."}
        )
    if any(len(label) > SCALE_LABEL_MAX_LENGTH for label in labels):
        raise ValidationError({"scale_labels": f"Each label can be at most {SCALE_LABEL_MAX_LENGTH} characters."})
    return labels[0], labels[1]


def ballot_choice_ids(
    *, poll: Poll, choices: Sequence[int] | None = None, value: object = None, words: object = None
) -> list[int]:
    """The choice ids a vote sent as `choices` (a poll of choices) or as a rating's `value` (a scale,
    whose values are its choices in order) stands for; none for a word cloud's `words`. Raises
    `InvalidValue` when the vote is of the other kind (`InvalidWords` when words are involved) or its
    value is off the scale; the choices and words themselves are checked by `vote_cast`."""
    if poll.is_words:
        if choices or value is not None:
            raise InvalidWords("This poll is a word cloud: send 'words', not choices or a value.")
        return []
    if words is not None:
        raise _not_a_word_cloud(poll)
    if not poll.is_scale:
        if value is not None:
            raise InvalidValue("This poll is not a rating scale: send 'choices', not 'value'.")
        return list(choices or [])
    if value is None:
        raise InvalidValue(f"This poll is a rating scale: send a 'value' from {poll.scale_min} to {poll.scale_max}.")
    if isinstance(value, bool) or not isinstance(value, int) or not poll.scale_min <= value <= poll.scale_max:
        raise InvalidValue(f"Pick a whole number from {poll.scale_min} to {poll.scale_max}.")
    return [list(poll.choices.all())[value - poll.scale_min].id]


def _validate_choices(texts: list[str], *, max_choices: int) -> None:
    if len(texts) < MIN_CHOICES:
        raise ValidationError({"choices": f"Give at least {MIN_CHOICES} choices."})
    if len(texts) > MAX_CHOICES:
        raise ValidationError({"choices": f"A poll can have at most {MAX_CHOICES} choices."})
    too_long = [text for text in texts if len(text) > CHOICE_MAX_LENGTH]
    if too_long:
        raise ValidationError({"choices": f"Each choice can be at most {CHOICE_MAX_LENGTH} characters."})
    if len({text.casefold() for text in texts}) != len(texts):
        raise ValidationError({"choices": "Each choice must be different."})
    if not 1 <= max_choices <= len(texts):
        raise ValidationError(
            {"max_choices": f"Voters can pick between 1 and {len(texts)} choices (the number of choices)."}
        )


def vote_cast(
    *,
    poll: Poll,
    choice_ids: Sequence[int],
    voter_key: str | None,
    ip_address: str | None,
    words: Sequence[str] | None = None,
) -> CastBallot:
    """Counts one ballot (`choice_ids`, or a word cloud's `words` as the voter typed them), or raises
    `VoteRejected` saying why not.

    The ballot is committed before this returns (callers answer 2xx only then); the cached
    tally is updated after the commit, and losing that update never loses the vote. Raises
    `RateLimited` first, before any other check: every attempt counts against the limits.
    """
    rate_limit_check(action="vote", ip_address=ip_address, voter_key=voter_key)
    now = timezone.now()
    if not poll.is_open(now):
        if poll.event_id is not None:
            raise QuestionNotOpen()  # its presenter's phase and window are the poll's own fields (polls.events)
        raise PollNotOpenYet() if poll.opens_at and now < poll.opens_at and not poll.closed else PollClosed()
    terms = _ballot_terms(poll, words)
    chosen = [] if poll.is_words else _chosen_choices(poll, choice_ids)

    if poll.dedupe == Poll.Dedupe.NONE:
        # Every call is a new ballot; the prefix still tells the page this browser has voted.
        voter_key = f"{(voter_key or 'anonymous')[: VOTER_KEY_MAX_LENGTH - 20]}~{secrets.token_urlsafe(12)}"
    elif not voter_key:
        raise VoterRequired()
    ip_hash = client_address_hash(poll=poll, ip_address=ip_address)
    choice_mask = sum(choice.bit for choice in chosen)

    ballot_id = ballot_insert(
        poll_id=poll.id,
        voter_key=voter_key,
        ip_hash=ip_hash,
        ip_key=ip_hash if poll.dedupe == Poll.Dedupe.IP and ip_hash else None,
        choice_mask=choice_mask,
        submitted_at=now,
        terms=terms_stored(terms),
    )
    if ballot_id is None:
        raise AlreadyVoted()
    chosen_ids = [choice.id for choice in chosen]
    transaction.on_commit(
        lambda: tally_record_ballot(poll=poll, ballot_id=ballot_id, choice_ids=chosen_ids, terms=terms)
    )
    return CastBallot(poll=poll, choice_ids=chosen_ids, voter_key=voter_key, choice_mask=choice_mask, terms=terms)


def _ballot_terms(poll: Poll, words: Sequence[str] | None) -> list[str]:
    """A word cloud's terms as kept (polls/words.py); none for another kind, which takes no words."""
    if not poll.is_words:
        if words:
            raise _not_a_word_cloud(poll)
        return []
    try:
        return ballot_terms(poll=poll, words=list(words or []))
    except InvalidTerms as invalid:
        raise InvalidWords(str(invalid)) from None


def _not_a_word_cloud(poll: Poll) -> InvalidWords:
    if poll.is_scale:
        return InvalidWords("This poll is a rating scale: send a 'value' on its scale, not words.")
    return InvalidWords("This poll is not a word cloud: pick from its choices instead of typing words.")


def _chosen_choices(poll: Poll, choice_ids: Sequence[int]) -> list[Choice]:
    wanted = set(choice_ids)
    if not wanted:
        raise InvalidChoices("Pick at least one choice.")
    if len(wanted) != len(choice_ids):
        raise InvalidChoices("Each choice can be picked only once.")
    if len(wanted) > poll.max_choices:
        raise InvalidChoices(
            "Pick only one choice." if poll.max_choices == 1 else f"Pick at most {poll.max_choices} choices."
        )
    chosen = [choice for choice in poll.choices.all() if choice.id in wanted]
    if len(chosen) != len(wanted):
        raise InvalidChoices("That choice is not part of this poll.")
    return chosen


def client_address_hash(*, poll: Poll, ip_address: str | None) -> str:
    """A salted, per-poll hash of the client's network, the one the rate limiter counts by: the
    address is never stored."""
    network = address_network(ip_address)
    if network is None:
        return ""
    message = f"{poll.id}:{network}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()


def _not_an_event_question(poll: Poll) -> None:
    """An event's question opens, closes, shows results and goes with its event (polls.events): its
    own owner page may not change what the presenter set."""
    if poll.event_id is not None:
        raise ValidationError("This question belongs to an event: its presenter opens and closes it from the console.")


def poll_close(*, poll: Poll) -> Poll:
    _not_an_event_question(poll)
    poll.closed = True
    poll.active_at = timezone.now()
    poll.save(update_fields=["closed", "active_at"])
    tally_mark_changed(poll=poll)
    return poll


def poll_reopen(*, poll: Poll) -> Poll:
    """Takes votes again; a deadline already passed is cleared, or reopening would do nothing. An
    archived poll is brought back: its tally is rebuilt from the record on the next read or vote."""
    _not_an_event_question(poll)
    poll.closed = False
    poll.active_at = timezone.now()
    if poll.archived_at is not None:
        poll.code = join_code_claim()  # archiving gave its code back
    poll.archived_at = None
    if poll.closes_at and poll.closes_at <= poll.active_at:
        poll.closes_at = None
    poll.save(update_fields=["closed", "closes_at", "active_at", "archived_at", "code"])
    tally_mark_changed(poll=poll)
    return poll


def poll_update_settings(*, poll: Poll, closes_at: datetime | None, results_visibility: str) -> Poll:
    """Sets or clears the deadline and changes who may see results."""
    _not_an_event_question(poll)
    if closes_at is not None and closes_at <= timezone.now():
        raise ValidationError({"closes_at": "The deadline must be in the future."})
    poll.closes_at = closes_at
    poll.results_visibility = results_visibility
    poll.full_clean(exclude=["slug"])
    poll.active_at = timezone.now()
    poll.save(update_fields=["closes_at", "results_visibility", "active_at"])
    tally_mark_changed(poll=poll)
    return poll


def poll_delete(*, poll: Poll) -> None:
    """Deletes the poll with its choices and ballots, for good (its CSV export file too)."""
    _not_an_event_question(poll)
    poll_export_path(poll=poll).unlink(missing_ok=True)
    poll_export_release(poll=poll)
    poll_id = poll.id
    poll.delete()
    tally_discard(poll_ids={poll_id})


def ballots_void_burst(*, poll: Poll, network: str, minute: datetime) -> int:
    """Voids the poll's counted ballots from one network (its salted hash) in the burst window that
    starts at `minute`; returns how many. They stay in the record, marked, and keep their voters
    (and addresses) from voting again; every count leaves them out from now on.

    The tally is not decremented here: a ballot of the burst may still be on its way to Redis, and
    nothing could tell. The reconciler's look counts exactly that (`polls.tallies.reconcile`), so
    the poll is marked stale, then looked at once the void is committed. Voiding needs Redis up in
    production: a void the tallies might never hear of would leave them wrong for good.
    """
    try:
        tally_mark_stale(poll=poll)
    except redis.RedisError:
        raise VoidUnavailable() from None
    with transaction.atomic():
        voided = Ballot.objects.filter(
            poll=poll,
            ip_hash=network,
            submitted_at__gte=minute,
            submitted_at__lt=minute + BURST_WINDOW,
            voided_at__isnull=True,
        ).update(voided_at=timezone.now(), void_reason=VOID_REASON_BURST)
        if voided:
            transaction.on_commit(lambda: _ballots_voided(poll=poll))
    return voided


def _ballots_voided(*, poll: Poll) -> None:
    """After a void's commit: the tally taken down to the record; the chart's stored minutes and the
    CSV file prepared for the owner, which count the void ballots, dropped (the owner makes a new one)."""
    poll_id = poll.id
    minute_counts_forget(poll_id=poll_id)
    poll_export_path(poll=poll).unlink(missing_ok=True)
    try:
        tally_mark_stale(poll=poll)  # again: a run may have cleared the mark before the commit
        tally_reconcile_many(polls_with_choices(poll_ids=[poll_id]), wait_seconds=VOID_RECONCILE_WAIT_SECONDS)
    except redis.RedisError:
        logger.warning("Redis unavailable: poll %s's tally corrected by a later reconcile run", poll_id)
    tally_mark_changed(poll=poll)


def poll_export_write(*, poll: Poll) -> Path:
    """Writes the poll's CSV export to a file the owner can download, replacing an older one.

    Written to a temporary file then renamed, so a download never sees half a file; running it
    again only brings the file up to date with ballots cast since. The file's modification time is
    set to when its ballots were read, which is what the owner is told about its age.
    """
    target = poll_export_path(poll=poll)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    read_at = timezone.now().timestamp()
    try:
        with tempfile.NamedTemporaryFile(
            "w", dir=target.parent, prefix=f".{poll.slug}-", suffix=".part", delete=False, newline="", encoding="utf-8"
        ) as partial:
            try:
                partial.writelines(ballots_csv_lines(poll=poll))
            except BaseException:
                os.unlink(partial.name)
                raise
        os.utime(partial.name, (read_at, read_at))
        os.replace(partial.name, target)
    finally:
        poll_export_release(poll=poll)
    return target
