"""The record: polls, their choices and the ballots cast on them.

Models hold single-row truths. Anything touching several rows, or with side effects,
lives in `polls.services` (writes) and `polls.selectors` (reads).
"""

import hashlib
import hmac
import secrets
from datetime import datetime

from django.db import models
from django.db.models.functions import Now
from django.dispatch import Signal
from django.utils import timezone

# Letters and digits that cannot be confused when read off a screen (no 0/o, 1/l/i).
SLUG_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
SLUG_LENGTH = 10  # ~50 bits: short enough to type, too many to enumerate.

QUESTION_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 1000
CHOICE_MAX_LENGTH = 120
MIN_CHOICES = 2
MAX_CHOICES = 20
VOTER_KEY_MAX_LENGTH = 64
# The join code: 6 digits, typed on a phone from the big screen. Unique among events not ended and
# polls not archived (polls/join_codes.py), so a million codes serve far more than run at once.
EVENT_CODE_DIGITS = 6
# A rating scale runs over whole numbers within these bounds (DESIGN.md, "Question kinds"); its ends may carry a label.
SCALE_LOWEST, SCALE_HIGHEST = 0, 10
SCALE_DEFAULT_MIN, SCALE_DEFAULT_MAX = 1, 5
SCALE_LABEL_MAX_LENGTH = 40
# A word cloud's voter sends 1 to `max_words` terms, each this long at most once trimmed (polls/words.py).
WORDS_MAX_PER_BALLOT, WORDS_DEFAULT_PER_BALLOT = 5, 3
TERM_MAX_LENGTH = 40


def new_slug() -> str:
    return "".join(secrets.choice(SLUG_ALPHABET) for _ in range(SLUG_LENGTH))


def hash_owner_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# Sent with the slugs of polls changed by a queryset `update()`, which sends no post_save:
# caches of polls (polls/poll_cache.py) must hear of every change.
polls_updated = Signal()


class PollQuerySet(models.QuerySet):
    def update(self, **kwargs) -> int:
        slugs = list(self.values_list("slug", flat=True))
        updated = super().update(**kwargs)
        polls_updated.send(sender=Poll, slugs=slugs)
        return updated


class Poll(models.Model):
    class Kind(models.TextChoices):
        CHOICE = "choice", "Choices"
        # A rating: its values min..max are its choices (positions 0..max-min), so ballots, tallies,
        # reconciliation and exports treat it as any poll; only its results add an average and a median.
        SCALE = "scale", "Rating scale"
        # Open answers shown as a word cloud: a ballot carries its terms (`Ballot.terms`), no choices;
        # its tally counts terms by their normalised form (polls/words.py).
        WORDS = "words", "Word cloud"

    class Visibility(models.TextChoices):
        ALWAYS = "always", "Always"
        AFTER_VOTE = "after_vote", "After voting"
        AFTER_CLOSE = "after_close", "After the poll closes"
        # An event's questions only (polls/events.py): shown when the presenter reveals them,
        # which sets ALWAYS; hiding them again sets this back.
        PRESENTER = "presenter", "When the presenter reveals them"

    class Dedupe(models.TextChoices):
        BROWSER = "browser", "One vote per browser"
        IP = "ip", "One vote per browser and per network address"
        NONE = "none", "No limit"

    slug = models.CharField(max_length=16, unique=True, default=new_slug, editable=False)
    # Its join code (polls/join_codes.py): typed in the landing page's join box, shown on the kiosk.
    # None for an event's questions (their event's code joins them) and once archived.
    code = models.CharField(max_length=EVENT_CODE_DIGITS, null=True, blank=True, editable=False)  # noqa: DJ001
    kind = models.CharField(max_length=8, choices=Kind, default=Kind.CHOICE, db_default=Kind.CHOICE)
    question = models.CharField(max_length=QUESTION_MAX_LENGTH)
    description = models.TextField(max_length=DESCRIPTION_MAX_LENGTH, blank=True)
    max_choices = models.PositiveSmallIntegerField(default=1)
    opens_at = models.DateTimeField(null=True, blank=True)
    closes_at = models.DateTimeField(null=True, blank=True)
    closed = models.BooleanField(default=False, help_text="Closed by hand by the owner.")
    results_visibility = models.CharField(max_length=16, choices=Visibility, default=Visibility.ALWAYS)
    dedupe = models.CharField(max_length=8, choices=Dedupe, default=Dedupe.BROWSER)
    owner_token_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # When the poll was last known to be in use: its creation or its owner's last change, moved on by
    # the archiving task to its last ballot or a deadline still ahead (never on the vote's path).
    active_at = models.DateTimeField(default=timezone.now, db_default=Now(), editable=False)
    # Set when the archiving task closed it for want of activity (polls.upkeep.polls_archive_idle).
    archived_at = models.DateTimeField(null=True, blank=True, editable=False)

    # A rating scale's range and its end labels (kind "scale" only).
    scale_min = models.SmallIntegerField(null=True, blank=True)
    scale_max = models.SmallIntegerField(null=True, blank=True)
    scale_low_label = models.CharField(max_length=SCALE_LABEL_MAX_LENGTH, blank=True, default="", db_default="")
    scale_high_label = models.CharField(max_length=SCALE_LABEL_MAX_LENGTH, blank=True, default="", db_default="")
    # A word cloud's settings (kind "words" only): how many terms a voter may send, the normalised
    # terms its owner hid (left out of every screen), and whether profane terms are left out too.
    max_words = models.PositiveSmallIntegerField(null=True, blank=True)
    hidden_terms = models.JSONField(default=list, blank=True, db_default=[])
    profanity_filter = models.BooleanField(default=False, db_default=False)
    # Set for an event's questions: the event's presenter opens and closes them (polls/events.py).
    event = models.ForeignKey("Event", null=True, blank=True, on_delete=models.CASCADE, related_name="questions")
    event_position = models.PositiveSmallIntegerField(null=True, blank=True)

    objects = PollQuerySet.as_manager()

    class Meta:
        indexes = [
            # The reconciler and the deadline task scan polls that may still take votes.
            models.Index(fields=["closes_at"], name="poll_closes_at_idx"),
            # The broadcaster announces polls whose opening time just passed.
            models.Index(fields=["opens_at"], name="poll_opens_at_idx"),
            # The archiving task takes the polls not archived whose known activity is oldest.
            models.Index(
                fields=["active_at"], name="poll_unarchived_active_idx", condition=models.Q(archived_at__isnull=True)
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["code"], name="poll_unique_open_code", condition=models.Q(archived_at=None, code__isnull=False)
            ),
            models.UniqueConstraint(
                fields=["event", "event_position"],
                name="poll_unique_event_position",
                condition=models.Q(event__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return self.question

    @property
    def is_multiple_choice(self) -> bool:
        return self.max_choices > 1

    @property
    def is_scale(self) -> bool:
        return self.kind == self.Kind.SCALE

    @property
    def is_words(self) -> bool:
        return self.kind == self.Kind.WORDS

    @property
    def group_name(self) -> str:
        """The channel-layer group its live viewers join."""
        return f"poll.{self.slug}"

    def is_upcoming(self, now: datetime | None = None) -> bool:
        """Not open yet: its opening time is ahead (and its owner did not close it)."""
        return not self.closed and self.opens_at is not None and (now or timezone.now()) < self.opens_at

    def is_open(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        if self.closed:
            return False
        if self.opens_at and now < self.opens_at:
            return False
        if self.closes_at and now >= self.closes_at:
            return False
        return True

    def owner_token_matches(self, token: str) -> bool:
        # Constant-time, so the comparison leaks nothing about how much of a guess was right.
        return hmac.compare_digest(self.owner_token_hash, hash_owner_token(token))


EVENT_TITLE_MAX_LENGTH = 200
EVENT_MAX_QUESTIONS = 50


class Event(models.Model):
    """A presenter's sequence of questions (polls) behind one join code.

    The state is what every screen shows: the active question, its phase and vote window, and
    whether its results are revealed. `version` grows with every change of it, so screens can tell
    a newer state from an older one.
    """

    class Phase(models.TextChoices):
        WAITING = "waiting", "Waiting"  # shown, not open yet
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    slug = models.CharField(max_length=16, unique=True, default=new_slug, editable=False)
    code = models.CharField(max_length=EVENT_CODE_DIGITS, editable=False)  # polls.join_codes.join_code_claim
    title = models.CharField(max_length=EVENT_TITLE_MAX_LENGTH)
    question_count = models.PositiveSmallIntegerField(default=0, editable=False)  # fixed at creation
    owner_token_hash = models.CharField(max_length=64, editable=False)
    active = models.ForeignKey(Poll, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    phase = models.CharField(max_length=8, choices=Phase, default=Phase.WAITING)
    closes_at = models.DateTimeField(null=True, blank=True)
    reveal = models.BooleanField(default=False)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # Its last change of state: an event left running this long is ended (polls.upkeep.events_end_idle),
    # so its join code goes back to the pool.
    changed_at = models.DateTimeField(default=timezone.now, db_default=Now(), editable=False)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["code"], name="event_unique_live_code", condition=models.Q(ended_at=None)),
        ]
        indexes = [
            models.Index(fields=["changed_at"], name="event_running_changed_idx", condition=models.Q(ended_at=None)),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def group_name(self) -> str:
        return f"event.{self.slug}"

    def phase_at(self, now: datetime | None = None) -> str:
        """The phase as screens show it: an open question whose window ran out is closed."""
        if self.ended_at is not None:
            return self.Phase.CLOSED
        if self.phase == self.Phase.OPEN and self.closes_at and (now or timezone.now()) >= self.closes_at:
            return self.Phase.CLOSED
        return self.phase

    def owner_token_matches(self, token: str) -> bool:
        return hmac.compare_digest(self.owner_token_hash, hash_owner_token(token))


# The visibilities a poll's creator picks from; `presenter` is set by events on their questions only.
CREATOR_VISIBILITIES = [
    (value, label) for value, label in Poll.Visibility.choices if value != Poll.Visibility.PRESENTER
]


class Choice(models.Model):
    poll = models.ForeignKey(Poll, on_delete=models.CASCADE, related_name="choices")
    text = models.CharField(max_length=CHOICE_MAX_LENGTH)
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["poll", "position"], name="choice_unique_position")]

    def __str__(self) -> str:
        return self.text

    @property
    def bit(self) -> int:
        """This choice's bit in `Ballot.choice_mask`."""
        return 1 << self.position


class Ballot(models.Model):
    """One voter's answer to one poll.

    The chosen choices are a bit mask of their positions (a poll has at most 20), so a vote is
    a single-row `INSERT … ON CONFLICT DO NOTHING` and per-choice counts are one aggregate query.
    """

    # No index of its own: ballot_unique_voter and ballot_poll_time_idx both start with poll_id,
    # and every index is one more write on each vote.
    poll = models.ForeignKey(Poll, on_delete=models.CASCADE, related_name="ballots", db_index=False)
    voter_key = models.CharField(max_length=VOTER_KEY_MAX_LENGTH)
    # Salted hash of the client address; set as `ip_key` too when the poll dedupes by address.
    ip_hash = models.CharField(max_length=64, blank=True)
    # NULL, not "", when the poll does not dedupe by address: the unique constraint skips NULLs.
    ip_key = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    choice_mask = models.BigIntegerField()  # 0 for a word cloud's ballot
    # A word cloud's ballot: its terms as typed (trimmed, inner whitespace collapsed), one per line.
    # They are counted by their normalised form (polls/words.py); the typed form is what the CSV shows.
    terms = models.TextField(blank=True, default="", db_default="")
    submitted_at = models.DateTimeField(default=timezone.now)
    # Set when the owner voids the ballot (ballot stuffing, polls/ballot_audit.py): it stays in the
    # record, and keeps its voter (and address) from voting again, but no count includes it.
    voided_at = models.DateTimeField(null=True, blank=True)
    # A database default: ballots are inserted by raw SQL (polls/ballot_box.py) that names no such column.
    void_reason = models.CharField(max_length=200, blank=True, db_default="")

    class Meta:
        constraints = [
            # The pattern operator class lets this one index answer both the vote's conflict
            # check (=) and "has this browser voted" on polls without duplicate protection,
            # whose keys are "<voter>~<random>" (LIKE 'voter~%'), whatever the collation.
            models.UniqueConstraint(
                fields=["poll", "voter_key"],
                name="ballot_unique_voter",
                opclasses=["int8_ops", "varchar_pattern_ops"],
            ),
            models.UniqueConstraint(
                fields=["poll", "ip_key"], condition=models.Q(ip_key__isnull=False), name="ballot_unique_address"
            ),
        ]
        indexes = [
            # Export and the per-minute chart read a poll's ballots in time order.
            models.Index(fields=["poll", "submitted_at"], name="ballot_poll_time_idx"),
        ]

    def __str__(self) -> str:
        return f"Ballot {self.pk} on poll {self.poll_id}"
