"""Periodic work (Celery beat, `polls.tasks`): reconciling tallies, announcing deadlines, storing the
per-minute counts, archiving idle polls and ending idle events.

Each is bounded by activity, not by the number of polls: it looks at the polls that took ballots or
changed lately, or at a bounded batch of the oldest idle ones, so a site with 100,000 quiet polls
pays nothing for them (docs/scaling.md).
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from polls import events
from polls.models import Ballot, Event, Poll
from polls.poll_cache import poll_cache_release
from polls.records import poll_ids_with_ballots_since
from polls.redis_client import get_redis
from polls.selectors import polls_last_activity, polls_opened_or_closed_between
from polls.tallies.changes import tally_mark_changed
from polls.tallies.counts import tally_discard
from polls.tallies.reconcile import tallies_reconcile_changed
from polls.vote_minutes import COMMIT_SLACK, minute_counts_refresh

# The per-minute counts of a poll are refreshed while it took a ballot this recently: long enough
# for its last minute to end and be stored (a minute, the commit slack, a few missed beat ticks).
# Later, readers count what was not stored from the record: exact, and only the few newest rows.
VOTE_MINUTES_LOOKBACK = timedelta(minutes=3) + COMMIT_SLACK
# Polls whose minutes are stored per round trip: a bounded query and pipeline, however many polls took votes.
VOTE_MINUTES_BATCH = 1000
# How far back the deadline announcer looks when it has no checkpoint (first run, Redis flushed).
DEADLINE_CATCH_UP = timedelta(minutes=10)
DEADLINES_CHECKPOINT_KEY = "deadlines:announced_until"
# The archiving task looks at this many polls at a time, and at most this many batches a run (every
# 10 minutes): its work is bounded whatever the number of polls; a backlog is worked off run by run.
ARCHIVE_BATCH_SIZE = 500
ARCHIVE_BATCHES_PER_RUN = 10
# Events ended per run of `events_end_idle` (every 10 minutes).
EVENTS_END_BATCH = 500


def polls_archive_idle(*, now: datetime | None = None) -> int:
    """Archives the polls idle for `POLL_ARCHIVE_AFTER_DAYS` days; returns how many (Celery beat).

    Idle: no ballot, no change by its owner and no opening time or deadline in that time or ahead.
    Archived: closed, `archived_at` set, and its Redis keys released (tally, stale mark, shared copy;
    the rest expire on their own). No periodic task looks at it again, since they follow ballots and
    deadlines and it has neither. Its pages, results and CSV stay: a results read rebuilds its tally
    from the record, kept for an hour (`counts.ARCHIVED_TALLY_SECONDS`). Reopening brings it back.

    Cost follows activity, not the number of polls: a batch is one range scan of the index of polls
    not archived, oldest known activity first, and one index probe per poll for its last ballot; at
    most `ARCHIVE_BATCHES_PER_RUN` batches a run. A poll found in use has its `active_at` moved on to
    its last activity, so it is not looked at again before it could be idle.
    """
    days = settings.POLL_ARCHIVE_AFTER_DAYS
    if not days:
        return 0
    now = now or timezone.now()
    idle_before = now - timedelta(days=days)
    archived = 0
    for _ in range(ARCHIVE_BATCHES_PER_RUN):
        last_activity = polls_last_activity(known_before=idle_before, limit=ARCHIVE_BATCH_SIZE)
        in_use = {poll_id: moment for poll_id, moment in last_activity.items() if moment >= idle_before}
        if in_use:
            moved_on = [Poll(id=poll_id, active_at=moment) for poll_id, moment in in_use.items()]
            Poll.objects.bulk_update(moved_on, ["active_at"])
        archived_now = _polls_archive(poll_ids=set(last_activity) - set(in_use), idle_before=idle_before, now=now)
        archived += archived_now
        if len(last_activity) < ARCHIVE_BATCH_SIZE or not (in_use or archived_now):
            break
    return archived


def _polls_archive(*, poll_ids: set[int], idle_before: datetime, now: datetime) -> int:
    if not poll_ids:
        return 0
    ballot_since = Ballot.objects.filter(poll_id=OuterRef("pk"), submitted_at__gte=idle_before)
    with transaction.atomic():
        # Checked again under lock: a ballot or an owner's change since the look keeps the poll, and
        # a poll its owner is changing right now is left to the next run.
        idle = list(
            Poll.objects.filter(id__in=poll_ids, archived_at__isnull=True, active_at__lt=idle_before)
            .exclude(Exists(ballot_since))
            .select_for_update(skip_locked=True)
            .values_list("id", "slug")
        )
        if idle:
            # Its join code goes back to the pool (reopening draws a new one).
            Poll.objects.filter(id__in=[poll_id for poll_id, _ in idle]).update(closed=True, archived_at=now, code=None)
            transaction.on_commit(lambda: _polls_archived(idle))
    return len(idle)


def _polls_archived(polls: list[tuple[int, str]]) -> None:
    """After an archive's commit: the polls' Redis keys released."""
    tally_discard(poll_ids={poll_id for poll_id, _ in polls})
    poll_cache_release(slugs=[slug for _, slug in polls])


def tallies_reconcile(*, now: datetime | None = None) -> int:
    """Makes the cached tallies of the polls that took a ballot since the last run, and of the polls
    marked stale, equal the record; polls without recent activity are not touched.

    Returns how many had drifted and were repaired. Safe to run at any time, votes flowing or not:
    a repair adds exactly what the tally lacks, and a run started while another looks leaves the
    tallies to it (`polls.tallies.reconcile`).
    """
    return tallies_reconcile_changed(now=now)


def poll_deadlines_announce(*, now: datetime | None = None) -> int:
    """Marks changed every poll whose opening time or deadline passed since the last call.

    The broadcaster notices deadlines within a second while it runs; this durable pass (Celery
    beat, with its checkpoint in Redis) catches those that passed while it was restarting. An
    announcement made twice only repeats an identical push. Returns how many polls.
    """
    client = get_redis()
    end = now or timezone.now()
    start = end - DEADLINE_CATCH_UP
    checkpoint = client.get(DEADLINES_CHECKPOINT_KEY) if client else None
    if checkpoint:
        start = max(start, datetime.fromisoformat(checkpoint))
    polls = list(polls_opened_or_closed_between(start=start, end=end).only("id", "slug"))
    for poll in polls:
        tally_mark_changed(poll=poll)
    if client:
        client.set(DEADLINES_CHECKPOINT_KEY, end.isoformat())
    return len(polls)


def vote_minutes_refresh(*, now: datetime | None = None) -> int:
    """Stores the per-minute vote counts of every poll that took a ballot lately; returns how many polls."""
    now = now or timezone.now()
    poll_ids = sorted(poll_ids_with_ballots_since(since=now - VOTE_MINUTES_LOOKBACK))
    for first in range(0, len(poll_ids), VOTE_MINUTES_BATCH):
        minute_counts_refresh(poll_ids=poll_ids[first : first + VOTE_MINUTES_BATCH], now=now)
    return len(poll_ids)


def events_end_idle(*, now: datetime | None = None) -> int:
    """Ends the events left running with no change of state for POLL_ARCHIVE_AFTER_DAYS days, at most
    `EVENTS_END_BATCH` a run (the oldest first, one indexed range): their codes go back to the pool of a
    million. Their questions were closed when last left, and the poll archiver takes them."""
    days = settings.POLL_ARCHIVE_AFTER_DAYS
    if not days:
        return 0
    now = now or timezone.now()
    idle = Event.objects.filter(ended_at=None, changed_at__lt=now - timedelta(days=days)).order_by("changed_at")
    ids = list(idle.values_list("id", flat=True)[:EVENTS_END_BATCH])
    ended = 0
    for event in Event.objects.filter(id__in=ids):
        try:
            events.event_control(event=event, action="end")
        except ValidationError:
            continue  # ended meanwhile
        ended += 1
    return ended
