"""Bringing the cached tallies back to the record, exactly, while votes keep flowing.

A run (Celery beat, every 10 s) looks only at the polls that took a ballot since the last complete
run, plus those marked stale: its cost follows the votes, not the number of polls. Which polls took
a ballot is asked of the record (a BRIN index on the ballots' time), not of Redis, on purpose: votes
cast while Redis was down are in the record only, and their tallies must still be repaired. The
time before which every ballot's poll was reconciled is kept in Redis: a Redis that restarts empty
forgets it, and the next run looks back `CATCH_UP` instead; one restored from an older save finds
the checkpoint that matches its older tallies.

With several shards (`REDIS_SHARD_URLS`) the lock and the checkpoint are on the home server, and each
batch is looked at shard by shard: a poll's tally, window and stale mark are on its shard, where the
look's pipelines and scripts run. A shard that does not answer is left for the next run (the checkpoint
stays where it was, so its polls' ballots are looked at again); the others are reconciled.
"""

import itertools
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta

import redis
from django.db import connection, transaction
from django.utils import timezone
from redis.lock import Lock

from polls.models import Poll
from polls.records import poll_ids_with_ballots_since, polls_with_choices
from polls.redis_client import PollRef, by_shard, get_redis, redis_for_poll, redis_shards, server_name
from polls.tallies.counts import (
    Tally,
    scripts,
    tallies_from_record,
    tally_discard,
    tally_from_hash,
    tally_store_if_absent,
)
from polls.tallies.keys import (
    CHANGED_KEY,
    RECONCILE_LOCK_KEY,
    RECONCILED_UNTIL_KEY,
    STALE_KEY,
    tally_key,
    window_key,
    words_key,
)

logger = logging.getLogger(__name__)

# A batch takes about a second; one killed while holding the lock holds back the next runs this long
# at most. Were a batch ever slower, two runs could look at once and share the polls' windows: the
# second opening restarts each window and the first closing deletes it, so at most one of them finds
# a window that vouches for its own look (`_close_windows`); the other leaves those polls to the next
# run. Neither repairs wrongly.
RECONCILE_LOCK_SECONDS = 15
# A window left open by a run that died stops collecting ballot ids after this long.
WINDOW_SECONDS = RECONCILE_LOCK_SECONDS
_WINDOW_OPEN = "open"  # a window's first element; ballot ids follow it
# How long the reconciler waits for the ballots of its snapshot to reach Redis: far longer than the
# moment between a ballot's commit and its increment (milliseconds). A ballot slower than this is
# taken for lost and added, and when its increment lands after all, the next run takes it off again.
SETTLE_SECONDS = 0.5
# Polls looked at together: one snapshot, one grouped query and one pipeline each way per batch.
BATCH_SIZE = 500
# A ballot is stamped just before its commit: a run looks back this much further than its
# checkpoint, so a ballot stamped before the last run began but committed after it is not missed.
COMMIT_SLACK = timedelta(seconds=10)
# Without a checkpoint (the first run, or Redis restarted empty): longer than any outage of the beat
# worth riding out.
CATCH_UP = timedelta(minutes=15)


def tallies_reconcile_changed(*, now: datetime | None = None) -> int:
    """Reconciles every poll that took a ballot since the last complete run, and every poll marked
    stale, in batches; returns how many tallies were repaired.

    One run at a time (a lock in Redis): a call while another run looks returns 0. A poll whose
    repair fails is marked stale, so the next run looks at it again; the rest of the run goes on.
    """
    home = get_redis()
    if home is None:
        return 0
    with _one_run_at_a_time(home) as lock:
        if lock is None:
            return 0
        started = now or timezone.now()
        checkpoint = home.get(RECONCILED_UNTIL_KEY)
        since = datetime.fromisoformat(checkpoint) if checkpoint else started - CATCH_UP
        stale, complete = tally_stale_poll_ids()
        poll_ids = poll_ids_with_ballots_since(since=since) | stale
        repaired = 0
        for batch in itertools.batched(sorted(poll_ids), BATCH_SIZE):
            polls = polls_with_choices(poll_ids=batch)
            # A stale mark of a poll deleted since must not stay in the set forever.
            tally_discard(poll_ids=set(batch) - {poll.id for poll in polls})
            for client, on_shard in by_shard(polls).items():
                try:
                    repaired += _reconcile_locked(client, on_shard)
                except redis.RedisError:
                    complete = False
                    logger.warning("Redis %s unavailable: its polls are reconciled next run", server_name(client))
            lock.extend(RECONCILE_LOCK_SECONDS, replace_ttl=True)
        if complete:
            home.set(RECONCILED_UNTIL_KEY, (started - COMMIT_SLACK).isoformat())
        return repaired


def tally_reconcile_many(polls: Sequence[Poll], *, wait_seconds: float = 0) -> int:
    """Brings the cached tallies of `polls` back to the record now; returns how many were repaired.

    One run at a time, as `tallies_reconcile_changed`; it leaves the checkpoint alone. While another
    run holds the lock it waits up to `wait_seconds` for it, then leaves the polls to the runs to come.
    """
    home = get_redis()
    if home is None or not polls:
        return 0
    with _one_run_at_a_time(home, wait_seconds=wait_seconds) as lock:
        if lock is None:
            return 0
        return sum(_reconcile_locked(client, on_shard) for client, on_shard in by_shard(list(polls)).items())


def tally_mark_stale(*, poll: PollRef) -> None:
    """Has the next reconcile run look at the poll whatever else it looks at: its record changed in a
    way no increment reports (ballots voided)."""
    client = redis_for_poll(poll)
    if client is not None:
        client.sadd(STALE_KEY, poll.id)


@contextmanager
def _one_run_at_a_time(client: redis.Redis, *, wait_seconds: float = 0) -> Iterator[Lock | None]:
    """The reconcile lock while the block runs, or None when another run holds it (`wait_seconds` on)."""
    lock = client.lock(
        RECONCILE_LOCK_KEY,
        timeout=RECONCILE_LOCK_SECONDS,
        blocking=wait_seconds > 0,
        blocking_timeout=wait_seconds or None,
    )
    if not lock.acquire():
        logger.info("A reconcile run is already looking at the tallies: this one leaves them to it")
        yield None
        return
    try:
        yield lock
    finally:
        with suppress(redis.exceptions.LockError):  # it expired: a batch took longer than the lock
            lock.release()


def tally_stale_poll_ids() -> tuple[set[int], bool]:
    """The polls marked stale on the shards that answer, and whether every shard did."""
    poll_ids, complete = set(), True
    for client in redis_shards():
        try:
            poll_ids |= {int(poll_id) for poll_id in client.smembers(STALE_KEY)}
        except redis.RedisError:
            complete = False
            logger.warning("Redis %s unavailable: its stale marks wait for the next run", server_name(client))
    return poll_ids, complete


def _reconcile_locked(client: redis.Redis, polls: Sequence[Poll]) -> int:
    """Votes keep arriving while this looks, and each ballot reaches Redis a moment after its commit,
    so comparing counts cannot tell a lost increment from one still on its way: replacing the tally
    with the record would count such a ballot twice, and correcting only the drift that is certain
    leaves the tally short by the votes that came while it looked. So a run looks at ballots:

    1. in one atomic step it reads each tally and opens the poll's window: from then on, every
       ballot counted in Redis is also written there by id (`counts._RECORD_BALLOT`);
    2. it reads the record in one snapshot, taken after step 1 (`_one_snapshot`);
    3. it waits until every ballot of that snapshot has surely reached Redis (`SETTLE_SECONDS`),
       then closes the windows;
    4. it asks the same snapshot which of the windows' ballots it holds.

    Each ballot of the snapshot was then counted before step 1, counted in a window, or lost. So
    the snapshot's counts, less those of its ballots in a window, less the tally of step 1, are
    exactly what the tally lacks (negative: what it counted twice). That is added with HINCRBY, so
    the increments landing meanwhile still count once.
    """
    if not polls:
        return 0
    repaired, rebuilt = _reconcile(client, polls)
    if rebuilt:
        # A tally rebuilt from the snapshot misses the ballots committed after it (they found no
        # tally to count in) and may count one that was on its way twice: one more look.
        repaired |= _reconcile(client, [poll for poll in polls if poll.id in rebuilt])[0]
    return len(repaired)


def _reconcile(client: redis.Redis, polls: Sequence[Poll]) -> tuple[set[int], set[int]]:
    """One look at `polls`: the ids of the polls repaired, and of those rebuilt."""
    opened = _open_windows(client, polls)
    with _one_snapshot():
        record = tallies_from_record(polls)
        time.sleep(SETTLE_SECONDS)
        windows = _close_windows(client, polls, opened)
        counted_ids = [ballot_id for ballot_ids in windows.values() if ballot_ids for ballot_id in ballot_ids]
        counted_meanwhile = tallies_from_record(polls, ballot_ids=counted_ids)
    repaired, rebuilt = set(), set()
    for poll in polls:
        try:
            outcome = _repair_one(client, poll, opened[poll.id], windows[poll.id], record, counted_meanwhile)
        except Exception:
            # One poll's failure must not hold back the others: it is looked at again next run.
            logger.exception("Poll %s: reconcile failed; marked stale for the next run", poll.id)
            client.sadd(STALE_KEY, poll.id)
            continue
        if outcome in ("repaired", "rebuilt"):
            repaired.add(poll.id)
        if outcome == "rebuilt":
            rebuilt.add(poll.id)
    return repaired, rebuilt


def _repair_one(
    client: redis.Redis,
    poll: Poll,
    opened: Tally | None,
    window: list[int] | None,
    record: dict[int, Tally],
    counted_meanwhile: dict[int, Tally],
) -> str | None:
    """Repairs one poll's tally after a look; returns "rebuilt", "repaired" or None (nothing to do, or left stale)."""
    if opened is None:
        if tally_store_if_absent(client, poll.id, record[poll.id]):  # else a reader rebuilt it meanwhile
            client.sadd(CHANGED_KEY, poll.id)
            return "rebuilt"
        return None
    if window is None:
        client.sadd(STALE_KEY, poll.id)  # the window cannot vouch for this look: the next run looks again
        return None
    correction = _drift(record[poll.id], counted_meanwhile[poll.id], opened)
    outcome = None
    if correction:
        args = [max(1, abs(correction.get("total", 0)))] + [item for pair in correction.items() for item in pair]
        if not scripts(client).add_if_exists(keys=[tally_key(poll.id), words_key(poll.id)], args=args):
            return None  # gone meanwhile (Redis restarted empty): the next reader or run rebuilds it
        logger.info(
            "Poll %s: tally corrected by %s (record %s, counted before the look %s, during it %s)",
            poll.id,
            correction,
            record[poll.id].total,
            opened.total,
            len(window),
        )
        client.sadd(CHANGED_KEY, poll.id)
        outcome = "repaired"
    client.srem(STALE_KEY, poll.id)  # exact as of the snapshot
    return outcome


def _open_windows(client: redis.Redis, polls: Sequence[Poll]) -> dict[int, Tally | None]:
    """Reads each poll's tally (None when there is none), a word cloud's every term included, and opens
    its window, in one MULTI/EXEC: every ballot counted after that reading is in the window."""
    pipeline = client.pipeline(transaction=True)
    for poll in polls:
        pipeline.delete(window_key(poll.id))
        pipeline.rpush(window_key(poll.id), _WINDOW_OPEN)
        pipeline.expire(window_key(poll.id), WINDOW_SECONDS)
        pipeline.hgetall(tally_key(poll.id))
        pipeline.zrange(words_key(poll.id), 0, -1, withscores=True)
    replies = pipeline.execute()
    opened: dict[int, Tally | None] = {}
    for n, poll in enumerate(polls):
        found, terms = replies[5 * n + 3], replies[5 * n + 4]
        opened[poll.id] = tally_from_hash(found, terms=dict(terms)) if found else None
    return opened


def _close_windows(
    client: redis.Redis, polls: Sequence[Poll], opened: dict[int, Tally | None]
) -> dict[int, list[int] | None]:
    """Closes the windows: poll id -> the ids of the ballots counted since it opened, or None when it
    cannot vouch for them. The tally's version grows by one per counted ballot, so it must have grown
    by exactly the window's length; otherwise Redis restarted from a save older than the opening, the
    tally was replaced meanwhile, or it appeared only after the window opened."""
    pipeline = client.pipeline(transaction=True)
    for poll in polls:
        pipeline.lrange(window_key(poll.id), 0, -1)
        pipeline.delete(window_key(poll.id))
        pipeline.hget(tally_key(poll.id), "version")
    replies = pipeline.execute()
    windows: dict[int, list[int] | None] = {}
    for n, poll in enumerate(polls):
        entries, _, version = replies[3 * n : 3 * n + 3]
        ballot_ids = [int(entry) for entry in entries[1:]]
        before = opened[poll.id]
        grew_by_the_window = (
            before is not None and version is not None and int(version) == before.version + len(ballot_ids)
        )
        windows[poll.id] = ballot_ids if entries[:1] == [_WINDOW_OPEN] and grew_by_the_window else None
    return windows


@contextmanager
def _one_snapshot() -> Iterator[None]:
    """Every query inside reads the record as of the first one: a REPEATABLE READ transaction. Inside
    a transaction already open (the tests') they share that one instead. SQLite runs embedded, without
    Redis, so there is nothing to reconcile on it and no transaction is opened (its would lock writes)."""
    if connection.vendor != "postgresql":
        yield
        return
    outermost = connection.get_autocommit()
    with transaction.atomic():
        if outermost:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def _drift(record: Tally, meanwhile: Tally, cached: Tally) -> dict[str, int]:
    """Field -> amount to add to `cached` (the tally when the window opened) so that it counts every
    ballot of `record` (the snapshot) but those counted since (`meanwhile`, the window's ballots in
    the snapshot). A word cloud's terms are fields `w:<term>`, those the tally counts and the record
    does not included (a term whose ballots were voided)."""
    expected = (
        {"total": record.total - meanwhile.total}
        | {f"c:{choice_id}": votes - meanwhile.counts.get(choice_id, 0) for choice_id, votes in record.counts.items()}
        | {f"w:{term}": 0 for term in cached.terms}
        | {f"w:{term}": ballots - meanwhile.terms.get(term, 0) for term, ballots in record.terms.items()}
    )
    have = (
        {"total": cached.total}
        | {f"c:{choice_id}": cached.counts.get(choice_id, 0) for choice_id in record.counts}
        | {f"w:{term[2:]}": cached.terms.get(term[2:], 0) for term in expected if term.startswith("w:")}
    )
    return {field: expected[field] - have[field] for field in expected if expected[field] != have[field]}
