"""Reads: polls, results and who may see them."""

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from polls.ballot_audit import BallotAudit, ballot_audit
from polls.exports import poll_export_file, poll_export_pending, poll_export_written_at
from polls.models import MAX_CHOICES, SLUG_ALPHABET, Ballot, Poll
from polls.poll_cache import poll_cached, poll_cached_with_tally
from polls.records import poll_ids_with_ballots_since as poll_ids_with_ballots_since  # offered to every door
from polls.records import polls_with_choices as polls_with_choices
from polls.tallies.counts import Tally, tallies_get, tally_get
from polls.vote_minutes import COMMIT_SLACK, chart_minutes, minute_counts_get
from polls.words import CloudTerm, cloud_terms, terms_of_ballot

# Slugs made by `new_slug`; the column allows up to 16 characters, older or imported ones too.
_SLUG_CHARACTERS = frozenset(SLUG_ALPHABET)
SLUG_MAX_LENGTH = 16

# An export file this young is offered as it is, even on a poll still taking votes: clicking again
# within this time starts no new export.
EXPORT_FRESH_FOR = timedelta(minutes=1)

# Spreadsheet programs run a cell that starts with one of these as a formula.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ChoiceResult:
    id: int
    text: str
    votes: int
    percent: int  # share of ballots that picked this choice, rounded


@dataclass(frozen=True)
class ScaleSummary:
    """A rating scale's results: every value with its votes, and their average and median (None before
    the first ballot)."""

    distribution: list[tuple[int, int]]
    average: float | None
    median: float | None


@dataclass(frozen=True)
class PollResults:
    poll: Poll
    total: int
    version: int
    closed: bool
    choices: list[ChoiceResult]
    # A word cloud's terms as screens show them (polls/words.py): most frequent first, at most 100.
    cloud: list[CloudTerm] | None = None

    @property
    def leader_votes(self) -> int:
        return max((choice.votes for choice in self.choices), default=0)

    @cached_property
    def scale(self) -> ScaleSummary | None:
        return _scale_summary(self.poll, self.choices) if self.poll.is_scale else None


def _scale_summary(poll: Poll, choices: list[ChoiceResult]) -> ScaleSummary:
    # A scale's choices are its values in order (polls.models.Poll.Kind.SCALE).
    distribution = [(poll.scale_min + position, choice.votes) for position, choice in enumerate(choices)]
    ballots = sum(votes for _, votes in distribution)
    if not ballots:
        return ScaleSummary(distribution, None, None)

    def nth(index: int) -> int:  # the index-th value (from 0) of the ballots sorted by value
        for value, votes in distribution:
            if index < votes:
                return value
            index -= votes
        raise IndexError(index)

    average = sum(value * votes for value, votes in distribution) / ballots
    median = (nth((ballots - 1) // 2) + nth(ballots // 2)) / 2
    return ScaleSummary(distribution, round(average, 2), median)


def poll_get(*, slug: str) -> Poll:
    """The poll with its choices loaded; raises `Poll.DoesNotExist` for unknown slugs.

    Served from the poll cache (this process's, else the copy shared in Redis) that a revision,
    bumped by every change of the poll, invalidates at once (polls/poll_cache.py): closing a poll
    takes effect on the next vote, and a lookup costs one Redis round trip however many polls exist.
    """
    if not _looks_like_slug(slug):
        # A malformed id is simply unknown; it never reaches the database (PostgreSQL refuses NUL bytes).
        raise Poll.DoesNotExist
    return poll_cached(slug)


def _looks_like_slug(slug: object) -> bool:
    return isinstance(slug, str) and 0 < len(slug) <= SLUG_MAX_LENGTH and set(slug) <= _SLUG_CHARACTERS


def poll_get_for_owner(*, slug: str, token: str) -> Poll:
    """The poll if `token` is its owner token; raises `Poll.DoesNotExist` otherwise."""
    poll = poll_get(slug=slug)
    if not poll.owner_token_matches(token):
        raise Poll.DoesNotExist
    return poll


def polls_opened_or_closed_between(*, start: datetime, end: datetime) -> QuerySet[Poll]:
    """Polls whose opening time or deadline fell in (start, end]: their state changed with no vote."""
    window = Q(closes_at__gt=start, closes_at__lte=end) | Q(opens_at__gt=start, opens_at__lte=end)
    return Poll.objects.filter(window)


def poll_ids_opened_or_closed_between(*, start: datetime, end: datetime) -> set[int]:
    return set(polls_opened_or_closed_between(start=start, end=end).values_list("id", flat=True))


def polls_last_activity(*, known_before: datetime, limit: int) -> dict[int, datetime]:
    """Up to `limit` polls not archived whose known activity (`active_at`) is older than `known_before`,
    oldest first: poll id -> the latest of that, its last ballot, its opening time and its deadline.
    One range scan of the index of polls not archived, and one index probe per poll for its last ballot."""
    rows = polls_known_active_before(known_before)[:limit].values_list(
        "id", "active_at", "opens_at", "closes_at", "last_ballot_at"
    )
    return {poll_id: max(moment for moment in moments if moment) for poll_id, *moments in rows}


def polls_known_active_before(moment: datetime) -> QuerySet[Poll]:
    last_ballot = Ballot.objects.filter(poll_id=OuterRef("pk")).order_by("-submitted_at").values("submitted_at")[:1]
    return (
        Poll.objects.filter(archived_at__isnull=True, active_at__lt=moment)
        .order_by("active_at")
        .annotate(last_ballot_at=Subquery(last_ballot))
    )


def poll_get_with_tally(*, slug: str) -> tuple[Poll, dict[str, str] | None]:
    """`poll_get`, with the poll's cached tally read in the same Redis round trip, for pages that may
    show results: pass it on to `poll_results` (None when it could not be read with the poll)."""
    if not _looks_like_slug(slug):
        raise Poll.DoesNotExist
    return poll_cached_with_tally(slug)


def poll_results(*, poll: Poll, cached_tally: dict[str, str] | None = None) -> PollResults:
    return _results(poll, tally_get(poll, cached=cached_tally))


def polls_results(*, polls: list[Poll]) -> dict[int, PollResults]:
    """The results of many polls (poll id -> results), their tallies read in one Redis round trip."""
    tallies = tallies_get(polls)
    return {poll.id: _results(poll, tallies[poll.id]) for poll in polls}


def _results(poll: Poll, tally: Tally) -> PollResults:
    choices = []
    for choice in poll.choices.all():
        votes = tally.counts.get(choice.id, 0)
        percent = round(100 * votes / tally.total) if tally.total else 0
        choices.append(ChoiceResult(id=choice.id, text=choice.text, votes=votes, percent=percent))
    cloud = None
    if poll.is_words:
        counted = ((term, tally.spellings.get(term, term), count) for term, count in tally.terms.items())
        cloud = cloud_terms(poll=poll, counted=counted)
    return PollResults(
        poll=poll, total=tally.total, version=tally.version, closed=not poll.is_open(), choices=choices, cloud=cloud
    )


def poll_votes_per_minute(*, poll: Poll) -> list[tuple[datetime, int]]:
    """Ballots per minute over the last hour, oldest first, for the owner's chart (zeros included)."""
    return minute_counts_get(poll_id=poll.id)


@dataclass(frozen=True)
class MinuteBar:
    minute: datetime
    votes: int
    height: int  # percent of the busiest minute's votes; a minute with votes is never drawn flat


@dataclass(frozen=True)
class VoteChart:
    bars: list[MinuteBar]
    total: int  # ballots in the chart's hour
    peak: int
    poll_total: int  # ballots ever, to tell "no votes yet" from "none this hour"


def poll_vote_chart(*, poll: Poll) -> VoteChart:
    """The owner's chart: ballots per minute over the last hour, scaled to the busiest minute."""
    return _vote_chart(poll_votes_per_minute(poll=poll), poll_total=tally_get(poll).total)


def _vote_chart(minutes: list[tuple[datetime, int]], *, poll_total: int) -> VoteChart:
    peak = max((votes for _, votes in minutes), default=0)
    bars = [
        MinuteBar(minute=minute, votes=votes, height=max(round(100 * votes / peak), 3) if votes else 0)
        for minute, votes in minutes
    ]
    return VoteChart(bars=bars, total=sum(bar.votes for bar in bars), peak=peak, poll_total=poll_total)


@dataclass(frozen=True)
class OwnerActivity:
    """What the owner page shows of a poll's ballots: the chart and the ballot audit."""

    chart: VoteChart
    audit: BallotAudit


def poll_owner_activity(*, poll: Poll) -> OwnerActivity:
    """The owner's chart and ballot audit.

    Every poll starts with no ballot, and its owner lands on this page the moment it is created:
    there, one indexed EXISTS answers for both, instead of the chart's per-minute counts (two
    queries, five Redis calls) and the audit's four grouped queries. On a public site, where polls
    are created all the time, that was the owner page's cost (docs/scaling.md).
    """
    if Ballot.objects.filter(poll_id=poll.id).exists():  # counted or void: the audit lists voids too
        return OwnerActivity(chart=poll_vote_chart(poll=poll), audit=ballot_audit(poll=poll))
    no_votes = [(minute, 0) for minute in chart_minutes()]
    return OwnerActivity(chart=_vote_chart(no_votes, poll_total=0), audit=BallotAudit.of_no_ballots())


@dataclass(frozen=True)
class ExportStatus:
    pending: bool  # an export is queued or being written
    path: Path | None  # the last finished file
    written_at: datetime | None  # when that file's ballots were read
    newer_ballots: bool  # ballots may have arrived since: the file may lack some

    @property
    def fresh(self) -> bool:
        """Whether a new export would add nothing worth the wait."""
        if self.written_at is None:
            return False
        return not self.newer_ballots or timezone.now() - self.written_at < EXPORT_FRESH_FOR


def poll_export_status(*, poll: Poll) -> ExportStatus:
    path = poll_export_file(poll=poll)
    try:
        written_at = poll_export_written_at(path=path) if path else None
    except FileNotFoundError:  # the poll was deleted meanwhile
        path, written_at = None, None
    # A ballot is stamped just before its commit: one stamped shortly before the file was read may be missing.
    newer = (
        written_at is not None
        and Ballot.objects.filter(poll=poll, submitted_at__gte=written_at - COMMIT_SLACK).exists()
    )
    return ExportStatus(pending=poll_export_pending(poll=poll), path=path, written_at=written_at, newer_ballots=newer)


def poll_export_inline(*, poll: Poll) -> bool:
    """Whether the poll is small enough to stream its CSV straight from a web process."""
    return tally_get(poll).total <= settings.EXPORT_INLINE_MAX_BALLOTS


# "Has this browser voted, and what did it pick", asked by every page a returning browser opens.
# Written out because the ORM took longer to build this query than PostgreSQL takes to answer it
# (docs/benchmarks.md).
_VOTER_PICK = f"SELECT choice_mask FROM {Ballot._meta.db_table} WHERE poll_id = %s AND voter_key = %s LIMIT 1"


def voter_pick(*, poll: Poll, voter_key: str | None) -> int | None:
    """The choice bit mask of this browser's ballot in `poll` (its first, where every submission
    counts), or None when it has not voted."""
    if not voter_key:
        return None
    if poll.dedupe != Poll.Dedupe.NONE:  # the common case: one exact lookup in ballot_unique_voter
        with connection.cursor() as cursor:
            cursor.execute(_VOTER_PICK, [poll.id, voter_key])
            row = cursor.fetchone()
            return None if row is None else row[0]
    # Polls without duplicate protection store each of a voter's ballots as "<key>~<random>".
    mine = Q(voter_key=voter_key) | Q(voter_key__startswith=f"{voter_key}~")
    return Ballot.objects.filter(mine, poll=poll).order_by("submitted_at").values_list("choice_mask", flat=True).first()


def voter_has_voted(*, poll: Poll, voter_key: str | None) -> bool:
    return voter_pick(poll=poll, voter_key=voter_key) is not None


def mine_positions(mask: int) -> str:
    """The choice positions of a ballot's bit mask as the words pages mark them by ("p0 p3"): each
    results bar carries its `data-pick="p<position>"`, and the stylesheet marks those in `data-mine`."""
    return " ".join(f"p{position}" for position in range(MAX_CHOICES) if mask >> position & 1)


@dataclass(frozen=True)
class ViewerResults:
    """What one viewer may see of a poll's results: the results, or why they are hidden."""

    results: PollResults | None
    hidden_reason: str | None


def poll_results_for_viewer(
    *,
    poll: Poll,
    voter_key: str | None = None,
    has_voted: bool | None = None,
    is_owner: bool = False,
    cached_tally: dict[str, str] | None = None,
) -> ViewerResults:
    """The results this viewer may see, or the reason they may not: the rule every door applies.

    Whether the viewer voted is asked of the record only when it decides the answer
    (`voting_reveals_results`), unless the caller knows already (`has_voted`).
    """
    if has_voted is None:
        has_voted = voting_reveals_results(poll=poll) and voter_has_voted(poll=poll, voter_key=voter_key)
    if not results_visible(poll=poll, has_voted=has_voted, is_owner=is_owner):
        return ViewerResults(results=None, hidden_reason=results_hidden_reason(poll=poll))
    return ViewerResults(results=poll_results(poll=poll, cached_tally=cached_tally), hidden_reason=None)


def results_visible(*, poll: Poll, has_voted: bool, is_owner: bool = False) -> bool:
    """Whether results may be shown: the owner always; others as the poll's visibility says, and
    everyone once the poll is closed; an event's question only once its presenter reveals them."""
    if is_owner or poll.results_visibility == Poll.Visibility.ALWAYS:
        return True
    if poll.results_visibility == Poll.Visibility.PRESENTER:
        return False  # an event's question, until its presenter reveals the results (polls.events)
    if not poll.is_open():
        return True
    return poll.results_visibility == Poll.Visibility.AFTER_VOTE and has_voted


def voting_reveals_results(*, poll: Poll) -> bool:
    """Whether a viewer's own vote changes what they may see (an open `after_vote` poll): only then
    is it worth a ballot lookup to know who is asking."""
    return poll.results_visibility == Poll.Visibility.AFTER_VOTE and poll.is_open()


def results_hidden_reason(*, poll: Poll) -> str:
    if poll.results_visibility == Poll.Visibility.AFTER_VOTE:
        return "Results appear here once you have voted."
    if poll.results_visibility == Poll.Visibility.PRESENTER:
        return "Results appear when the presenter shows them."
    return "Results will be shown when the poll closes."


def ballots_csv_rows(*, poll: Poll) -> Iterator[list[str]]:
    """The CSV export: a header, then each counted ballot's time (UTC) and chosen texts (void ones are
    left out, as from every count).

    No voter keys or address hashes leave the record, and cells that a spreadsheet would run as
    a formula are prefixed with an apostrophe.
    """
    choices = list(poll.choices.all())
    # A word cloud's terms, each in a column of its own (a term may hold "; "): every term as typed,
    # hidden ones too, since the export is the owner's record.
    words = range(1, (poll.max_words or 0) + 1) if poll.is_words else range(0)
    yield ["submitted_at", *(f"word {n}" for n in words)] if poll.is_words else ["submitted_at", "choices"]
    ballots = Ballot.objects.filter(poll=poll, voided_at__isnull=True).order_by("submitted_at", "id")
    ballots = ballots.values_list("submitted_at", "choice_mask", "terms")
    for submitted_at, mask, terms in ballots.iterator(chunk_size=2000):
        when = submitted_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if poll.is_words:
            typed = terms_of_ballot(terms)
            yield [when, *(_neutralise_formula(term) for term in typed), *[""] * (len(words) - len(typed))]
        else:
            yield [when, _neutralise_formula("; ".join(choice.text for choice in choices if mask & choice.bit))]


def _neutralise_formula(cell: str) -> str:
    return f"'{cell}" if cell.startswith(_FORMULA_PREFIXES) else cell


class _Echo:
    """A file-like object whose write returns the line, for streaming CSV."""

    def write(self, value: str) -> str:
        return value


def ballots_csv_lines(*, poll: Poll) -> Iterator[str]:
    writer = csv.writer(_Echo())
    for row in ballots_csv_rows(poll=poll):
        yield writer.writerow(row)
