"""Votes per minute for the owner's chart: counted from the record, cached in Redis.

Counting a busy poll's last hour from PostgreSQL on every page view would read every ballot of
that hour, so a Celery task (`polls.tasks.refresh_vote_minutes`) counts only the minutes since
its last pass and stores them as exact numbers. Reads take the stored minutes and count the few
seconds since the last pass from the record, so the chart is exact even if the task is late.
Without Redis (embedded mode, or Redis down) everything is counted from the record.

Redis keys, per poll: `minutes:<poll id>` (hash: minute as epoch seconds → ballots) and
`minutes:<poll id>:until` (epoch seconds: the minutes before it are stored and complete). They are on
the home server, not the poll's shard: no script reads them with the tally, the task stores a thousand
polls' minutes in one pipeline, and they are small (a few hours of minutes of polls voted in lately).
"""

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import redis
from django.db.models import Count
from django.db.models.functions import TruncMinute
from django.utils import timezone

from polls.models import Ballot
from polls.redis_client import get_redis

logger = logging.getLogger(__name__)

CHART_MINUTES = 60
# A ballot is stamped before its commit; a minute counts as complete only this long after it ended.
COMMIT_SLACK = timedelta(seconds=10)
# Stored minutes of a poll nobody votes in any more are dropped after this long.
KEY_TTL_SECONDS = 2 * 60 * 60


def floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def minute_counts_from_record(
    *, poll_ids: Sequence[int], start: datetime, end: datetime | None = None
) -> dict[int, dict[datetime, int]]:
    """Counted (not void) ballots per poll and minute in [start, end): one grouped query over those
    polls' index ranges (poll, submitted_at). A poll without ballots there is left out."""
    ballots = Ballot.objects.filter(poll_id__in=poll_ids, submitted_at__gte=start, voided_at__isnull=True)
    if end is not None:
        ballots = ballots.filter(submitted_at__lt=end)
    rows = ballots.annotate(minute=TruncMinute("submitted_at")).values("poll_id", "minute").annotate(n=Count("id"))
    counts: dict[int, dict[datetime, int]] = defaultdict(dict)
    for row in rows:
        counts[row["poll_id"]][row["minute"]] = row["n"]
    return counts


def minute_counts_refresh(*, poll_ids: Sequence[int], now: datetime | None = None) -> None:
    """Stores exact counts for every complete minute not stored yet of each poll; running it twice
    changes nothing.

    Whatever the number of polls: 1 Redis read (each poll's `until`), one grouped query per distinct
    start (polls refreshed together share one: usually one or two queries, never more than the chart's
    minutes), 1 Redis pipeline. Asked poll by poll, thousands of polls voted in lately cost the Celery
    worker three round trips each every 15 s (docs/scaling.md).
    """
    client = get_redis()
    if client is None or not poll_ids:
        return
    now = now or timezone.now()
    until = floor_minute(now - COMMIT_SLACK)
    an_hour_before = until - timedelta(minutes=CHART_MINUTES)
    stored_until = client.mget([_until_key(poll_id) for poll_id in poll_ids])
    polls_by_start: dict[datetime, list[int]] = defaultdict(list)
    for poll_id, stored in zip(poll_ids, stored_until, strict=True):
        start = max(_from_epoch(stored), an_hour_before) if stored else an_hour_before
        if start < until:
            polls_by_start[start].append(poll_id)
    if not polls_by_start:
        return
    pipeline = client.pipeline(transaction=False)
    for start, polls in polls_by_start.items():
        for poll_id, counts in minute_counts_from_record(poll_ids=polls, start=start, end=until).items():
            pipeline.hset(_key(poll_id), mapping={_epoch(minute): n for minute, n in counts.items()})
        for poll_id in polls:
            pipeline.set(_until_key(poll_id), _epoch(until))
            pipeline.expire(_key(poll_id), KEY_TTL_SECONDS)
            pipeline.expire(_until_key(poll_id), KEY_TTL_SECONDS)
    pipeline.execute()


def minute_counts_forget(*, poll_id: int) -> None:
    """Drops the poll's stored minutes (its ballots were voided): the next read counts them again."""
    client = get_redis()
    if client is None:
        return
    try:
        client.delete(_key(poll_id), _until_key(poll_id))
    except redis.RedisError:
        logger.warning("Redis unavailable: stored minutes of poll %s kept until they expire", poll_id)


def chart_minutes(now: datetime | None = None) -> list[datetime]:
    """The last `CHART_MINUTES` minutes, oldest first: the minutes the owner's chart shows."""
    first = floor_minute(now or timezone.now()) - timedelta(minutes=CHART_MINUTES - 1)
    return [first + timedelta(minutes=i) for i in range(CHART_MINUTES)]


def minute_counts_get(*, poll_id: int, now: datetime | None = None) -> list[tuple[datetime, int]]:
    """The last `CHART_MINUTES` minutes, oldest first, each with its ballots (0 included)."""
    now = now or timezone.now()
    minutes = chart_minutes(now)
    counts = _stored_or_counted(poll_id=poll_id, first=minutes[0], now=now)
    return [(minute, counts.get(minute, 0)) for minute in minutes]


def _stored_or_counted(*, poll_id: int, first: datetime, now: datetime) -> dict[datetime, int]:
    client = get_redis()
    if client is None:
        return minute_counts_from_record(poll_ids=[poll_id], start=first).get(poll_id, {})
    try:
        if not client.exists(_until_key(poll_id)):
            minute_counts_refresh(poll_ids=[poll_id], now=now)
        stored, stored_until = client.hgetall(_key(poll_id)), client.get(_until_key(poll_id))
    except redis.RedisError:
        logger.warning("Redis unavailable: votes per minute of poll %s counted from the record", poll_id)
        return minute_counts_from_record(poll_ids=[poll_id], start=first).get(poll_id, {})
    tail_start = max(_from_epoch(stored_until), first) if stored_until else first
    counts = {_from_epoch(epoch): int(n) for epoch, n in stored.items() if _from_epoch(epoch) < tail_start}
    counts.update(minute_counts_from_record(poll_ids=[poll_id], start=tail_start).get(poll_id, {}))
    return counts


def _key(poll_id: int) -> str:
    return f"minutes:{poll_id}"


def _until_key(poll_id: int) -> str:
    return f"minutes:{poll_id}:until"


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _from_epoch(epoch: str | int) -> datetime:
    return datetime.fromtimestamp(int(epoch), tz=UTC)
