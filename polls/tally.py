"""Tallies: per-choice counts, total and version of each poll.

PostgreSQL (the ballots) is the record; Redis holds a cache of each poll's tally so that
reading results costs one `HGETALL` instead of an aggregate over every ballot. Without Redis
(embedded mode, or Redis down) tallies are computed from the record.

`version` grows with every counted ballot and never goes back: it starts as the number of
ballots, each counted ballot adds one, and a repair of a drifted tally moves it forward by the
size of the correction (at least one) so viewers that ignore older pushes still take the
repaired one.

Redis keys:
- `tally:<poll id>`: hash of `c:<choice id>` counts, `total` and `version`;
- `tally:changed`: set of poll ids whose results changed since the broadcaster last looked;
- `tally:stale`: set of poll ids whose cached tally may miss a ballot (see `_RECORD_BALLOT`);
- `tally:window:<poll id>`: while the reconciler looks, the ids of the ballots counted since it
  began (see `tally_reconcile_many`);
- `tally:reconciling`: the lock that keeps reconcile runs one at a time.
"""

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cache

import redis
from django.db import connection, transaction
from django.db.models import Count, F, Sum
from redis.commands.core import Script

from polls.models import Ballot, Poll
from polls.redis_client import get_redis

logger = logging.getLogger(__name__)

CHANGED_KEY = "tally:changed"
STALE_KEY = "tally:stale"
RECONCILE_LOCK_KEY = "tally:reconciling"
# A run takes about a second; one killed while holding the lock holds back the next runs this long
# at most. Were a run ever slower, two could look at once and share the polls' windows: the second
# opening restarts each window and the first closing deletes it, so at most one of them finds a
# window that vouches for its own look (`_close_windows`); the other leaves those polls to the next
# run. Neither repairs wrongly.
RECONCILE_LOCK_SECONDS = 15
# A window left open by a run that died stops collecting ballot ids after this long.
WINDOW_SECONDS = RECONCILE_LOCK_SECONDS
_WINDOW_OPEN = "open"  # a window's first element; ballot ids follow it
# Seconds a tally computed from the record is reused in-process while Redis is down.
FALLBACK_CACHE_SECONDS = 1.0
# How long the reconciler waits for the ballots of its snapshot to reach Redis: far longer than the
# moment between a ballot's commit and its increment (milliseconds). A ballot slower than this is
# taken for lost and added, and when its increment lands after all, the next run takes it off again.
SETTLE_SECONDS = 0.5


@dataclass(frozen=True)
class Tally:
    counts: dict[int, int]  # choice id -> selections
    total: int
    version: int


def tally_key(poll_id: int) -> str:
    return f"tally:{poll_id}"


def window_key(poll_id: int) -> str:
    return f"tally:window:{poll_id}"


def tally_from_record(poll: Poll) -> Tally:
    """Counts every ballot of `poll` in one aggregate query."""
    return tallies_from_record([poll])[poll.id]


def tallies_from_record(polls: Sequence[Poll], *, ballot_ids: Sequence[int] | None = None) -> dict[int, Tally]:
    """Counts every ballot of `polls` (or only those of `ballot_ids`) in one aggregate query grouped
    by poll (poll id -> tally).

    One query for all of them, not one per poll: the reconciler reads every active poll each run,
    and at a query per poll its run grew with their number (make soak: 0.3 to 1.3 s).
    """
    if not polls:
        return {}
    positions = range(1 + max((choice.position for poll in polls for choice in poll.choices.all()), default=0))
    # Summing `mask & bit` over the ballots gives (selections of the choice at that position) × bit.
    sums = {f"at{position}": Sum(F("choice_mask").bitand(1 << position)) for position in positions}
    ballots = Ballot.objects.filter(poll_id__in=[poll.id for poll in polls])
    if ballot_ids is not None:
        ballots = ballots.filter(id__in=ballot_ids)
    rows = ballots.values("poll_id").annotate(total=Count("id"), **sums).order_by()
    by_poll = {row["poll_id"]: row for row in rows}
    tallies = {}
    for poll in polls:
        row = by_poll.get(poll.id, {})
        counts = {choice.id: int(row.get(f"at{choice.position}") or 0) // choice.bit for choice in poll.choices.all()}
        total = row.get("total", 0)
        tallies[poll.id] = Tally(counts=counts, total=total, version=total)
    return tallies


# Increments only a tally that exists: creating a partial one from a single ballot would
# show wrong counts. When it is missing the poll is marked stale instead, so the reconciler
# rebuilds it even if a concurrent rebuild read the record before this ballot committed.
# While the reconciler looks at the poll (its window exists), the counted ballot's id goes there.
# KEYS: tally, changed set, stale set, window. ARGV: poll id, ballot id, then the choice ids.
_RECORD_BALLOT = """
redis.call('SADD', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SADD', KEYS[3], ARGV[1])
  return 0
end
for i = 3, #ARGV do
  redis.call('HINCRBY', KEYS[1], 'c:' .. ARGV[i], 1)
end
redis.call('HINCRBY', KEYS[1], 'total', 1)
if redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('RPUSH', KEYS[4], ARGV[2])
end
return redis.call('HINCRBY', KEYS[1], 'version', 1)
"""

# Replaces a tally only if no ballot was counted since `expected_version` was read
# (-1: only if there is no tally), so a rebuild never overwrites a newer increment.
# ARGV: expected version, the record's ballot count (the new version unless that would go
# back), then the hash's field/value pairs.
_REPLACE_IF_UNCHANGED = """
local current = redis.call('HGET', KEYS[1], 'version')
if (current == false and ARGV[1] ~= '-1') or (current ~= false and current ~= ARGV[1]) then
  return 0
end
local version = tonumber(ARGV[2])
if current ~= false and tonumber(current) >= version then
  version = tonumber(current) + 1
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'version', version, unpack(ARGV, 3))
return 1
"""


# Adds the reconciler's corrections to a tally that exists (a missing one is rebuilt instead) and
# moves its version forward by ARGV[1]. ARGV: the version step, then field/amount pairs.
_ADD_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
for i = 2, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
return redis.call('HINCRBY', KEYS[1], 'version', ARGV[1])
"""


class _EmbeddedChanges:
    """The changed-poll marks of embedded mode, where everything runs in one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._poll_ids: set[int] = set()

    def add(self, poll_id: int) -> None:
        with self._lock:
            self._poll_ids.add(poll_id)

    def pop_all(self) -> set[int]:
        with self._lock:
            poll_ids, self._poll_ids = self._poll_ids, set()
        return poll_ids


_embedded_changes = _EmbeddedChanges()
_fallback_cache: dict[int, tuple[float, Tally]] = {}


def tally_record_ballot(*, poll_id: int, ballot_id: int, choice_ids: list[int]) -> None:
    """Counts one committed ballot in the cached tally and marks the poll changed.

    Runs after the ballot's commit. A Redis failure is logged and swallowed: the vote is
    already in the record, and the reconciler repairs the tally when Redis is back.
    """
    client = get_redis()
    if client is None:
        _embedded_changes.add(poll_id)
        return
    try:
        keys = [tally_key(poll_id), CHANGED_KEY, STALE_KEY, window_key(poll_id)]
        _scripts(client).record_ballot(keys=keys, args=[poll_id, ballot_id, *choice_ids])
    except redis.RedisError:
        logger.warning("Redis unavailable: ballot for poll %s counted in the record only", poll_id)


def tally_mark_changed(*, poll_id: int) -> None:
    """Asks the broadcaster to push this poll again (e.g. after it was closed)."""
    client = get_redis()
    if client is None:
        _embedded_changes.add(poll_id)
        return
    try:
        client.sadd(CHANGED_KEY, poll_id)
    except redis.RedisError:
        logger.warning("Redis unavailable: poll %s not marked changed", poll_id)


def tally_pop_changed() -> set[int]:
    """The ids of polls whose results changed since the last call (for the broadcaster)."""
    client = get_redis()
    if client is None:
        return _embedded_changes.pop_all()
    poll_ids = client.spop(CHANGED_KEY, 10_000) or []
    return {int(poll_id) for poll_id in poll_ids}


def tally_get(poll: Poll, *, cached: dict[str, str] | None = None) -> Tally:
    """The poll's tally: from Redis, rebuilt from the record on a miss, or from the record alone.

    `cached` is the tally's hash when the caller already read it from Redis (`poll_cached_with_hash`).
    """
    if cached:
        return _tally_from_hash(cached)
    client = get_redis()
    if client is None:
        return tally_from_record(poll)
    try:
        cached = client.hgetall(tally_key(poll.id))
        if cached:
            return _tally_from_hash(cached)
        tally = tally_from_record(poll)
        _store(client, poll.id, tally, expected_version=-1)
        # A ballot committed before the read above but counted in Redis after the store would
        # be counted twice: have the reconciler check this poll once that window has passed.
        client.sadd(STALE_KEY, poll.id)
        return tally
    except redis.RedisError:
        return _tally_from_record_cached(poll)


def tally_reconcile(poll: Poll) -> bool:
    """Repairs the cached tally of one poll; True when it had drifted (see `tally_reconcile_many`)."""
    return tally_reconcile_many([poll]) == 1


def tally_reconcile_many(polls: Sequence[Poll]) -> int:
    """Brings the cached tallies of `polls` back to the record; returns how many were repaired.

    Votes keep arriving while this looks, and each ballot reaches Redis a moment after its commit,
    so comparing counts cannot tell a lost increment from one still on its way: replacing the
    tally with the record would count such a ballot twice, and correcting only the drift that is
    certain leaves the tally short by the votes that came while it looked (make chaos: 8-10 votes
    a poll, until the votes stopped). So a run looks at ballots, not only at counts:

    1. in one atomic step it reads each tally and opens the poll's window: from then on, every
       ballot counted in Redis is also written there by id (`_RECORD_BALLOT`);
    2. it reads the record in one snapshot, taken after step 1 (`_one_snapshot`);
    3. it waits until every ballot of that snapshot has surely reached Redis (`SETTLE_SECONDS`),
       then closes the windows;
    4. it asks the same snapshot which of the windows' ballots it holds.

    Each ballot of the snapshot was then counted before step 1, counted in a window, or lost. So
    the snapshot's counts, less those of its ballots in a window, less the tally of step 1, are
    exactly what the tally lacks (negative: what it counted twice). That is added with HINCRBY, so
    the increments landing meanwhile still count once.

    One run at a time (a lock in Redis): a call while another run looks returns 0.
    """
    client = get_redis()
    if client is None or not polls:
        return 0
    lock = client.lock(RECONCILE_LOCK_KEY, timeout=RECONCILE_LOCK_SECONDS, blocking=False)
    if not lock.acquire():
        logger.info("A reconcile run is already looking at the tallies: this one leaves them to it")
        return 0
    try:
        repaired, rebuilt = _reconcile(client, polls)
        if rebuilt:
            # A tally rebuilt from the snapshot misses the ballots committed after it (they found
            # no tally to count in) and may count one that was on its way twice: one more look.
            repaired |= _reconcile(client, [poll for poll in polls if poll.id in rebuilt])[0]
        return len(repaired)
    finally:
        with suppress(redis.exceptions.LockError):  # it expired: the run took over a minute
            lock.release()


def _reconcile(client: redis.Redis, polls: Sequence[Poll]) -> tuple[set[int], set[int]]:
    """One look at `polls` (see `tally_reconcile_many`): the ids of the polls repaired, and of those rebuilt."""
    opened = _open_windows(client, polls)
    with _one_snapshot():
        record = tallies_from_record(polls)
        time.sleep(SETTLE_SECONDS)
        windows = _close_windows(client, polls, opened)
        counted_ids = [ballot_id for ballot_ids in windows.values() if ballot_ids for ballot_id in ballot_ids]
        counted_meanwhile = tallies_from_record(polls, ballot_ids=counted_ids)
    repaired, rebuilt = set(), set()
    for poll in polls:
        if not opened[poll.id]:
            if _store(client, poll.id, record[poll.id], expected_version=-1):  # else a reader rebuilt it
                client.sadd(CHANGED_KEY, poll.id)
                repaired.add(poll.id)
                rebuilt.add(poll.id)
            continue
        if windows[poll.id] is None:
            client.sadd(STALE_KEY, poll.id)  # the window cannot vouch for this look: the next run looks again
            continue
        cached = _tally_from_hash(opened[poll.id])
        correction = _drift(record[poll.id], counted_meanwhile[poll.id], cached)
        if correction:
            args = [max(1, abs(correction.get("total", 0)))] + [item for pair in correction.items() for item in pair]
            if not _scripts(client).add_if_exists(keys=[tally_key(poll.id)], args=args):
                continue  # gone meanwhile (Redis restarted empty): the next run rebuilds it
            logger.info(
                "Poll %s: tally corrected by %s (record %s, counted before the look %s, during it %s)",
                poll.id,
                correction,
                record[poll.id].total,
                cached.total,
                len(windows[poll.id]),
            )
            client.sadd(CHANGED_KEY, poll.id)
            repaired.add(poll.id)
        client.srem(STALE_KEY, poll.id)  # exact as of the snapshot
    return repaired, rebuilt


def _open_windows(client: redis.Redis, polls: Sequence[Poll]) -> dict[int, dict[str, str]]:
    """Reads each poll's tally (empty when there is none) and opens its window, in one MULTI/EXEC:
    every ballot counted after that reading is in the window."""
    pipeline = client.pipeline(transaction=True)
    for poll in polls:
        pipeline.delete(window_key(poll.id))
        pipeline.rpush(window_key(poll.id), _WINDOW_OPEN)
        pipeline.expire(window_key(poll.id), WINDOW_SECONDS)
        pipeline.hgetall(tally_key(poll.id))
    replies = pipeline.execute()
    return {poll.id: replies[4 * n + 3] for n, poll in enumerate(polls)}


def _close_windows(
    client: redis.Redis, polls: Sequence[Poll], opened: dict[int, dict[str, str]]
) -> dict[int, list[int] | None]:
    """Closes the windows: poll id -> the ids of the ballots counted since it opened, or None when it
    cannot vouch for them. The tally's version grows by one per counted ballot, so it must have grown
    by exactly the window's length; otherwise Redis restarted from a save older than the opening,
    or the tally was replaced meanwhile."""
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
        grew_by_the_window = version is not None and int(version) == int(opened[poll.id]["version"]) + len(ballot_ids)
        complete = entries[:1] == [_WINDOW_OPEN] and opened[poll.id] and grew_by_the_window
        windows[poll.id] = ballot_ids if complete else None
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
    the snapshot)."""
    expected = {"total": record.total - meanwhile.total} | {
        f"c:{choice_id}": votes - meanwhile.counts.get(choice_id, 0) for choice_id, votes in record.counts.items()
    }
    have = {"total": cached.total} | {f"c:{choice_id}": cached.counts.get(choice_id, 0) for choice_id in record.counts}
    return {field: expected[field] - have[field] for field in expected if expected[field] != have[field]}


def tally_discard(*, poll_ids: set[int]) -> None:
    """Forgets the cached tallies and stale marks of polls that no longer exist."""
    client = get_redis()
    if client is None or not poll_ids:
        return
    try:
        client.delete(*(tally_key(poll_id) for poll_id in poll_ids))
        client.srem(STALE_KEY, *poll_ids)
    except redis.RedisError:
        logger.warning("Redis unavailable: tallies of deleted polls %s left to expire", sorted(poll_ids))


def tally_stale_poll_ids() -> set[int]:
    client = get_redis()
    if client is None:
        return set()
    return {int(poll_id) for poll_id in client.smembers(STALE_KEY)}


def _store(client: redis.Redis, poll_id: int, tally: Tally, *, expected_version: int) -> bool:
    fields: list[str | int] = ["total", tally.total]
    for choice_id, votes in tally.counts.items():
        fields += [f"c:{choice_id}", votes]
    replace = _scripts(client).replace_if_unchanged
    return bool(replace(keys=[tally_key(poll_id)], args=[expected_version, tally.version, *fields]))


@dataclass(frozen=True)
class _Scripts:
    record_ballot: Script
    replace_if_unchanged: Script
    add_if_exists: Script


@cache
def _scripts(client: redis.Redis) -> _Scripts:
    """The Lua scripts, registered once per client: calls send the script's hash (EVALSHA), not its text."""
    return _Scripts(
        record_ballot=client.register_script(_RECORD_BALLOT),
        replace_if_unchanged=client.register_script(_REPLACE_IF_UNCHANGED),
        add_if_exists=client.register_script(_ADD_IF_EXISTS),
    )


def _tally_from_hash(cached: dict[str, str]) -> Tally:
    counts = {int(field[2:]): int(value) for field, value in cached.items() if field.startswith("c:")}
    return Tally(counts=counts, total=int(cached.get("total", 0)), version=int(cached.get("version", 0)))


def _tally_from_record_cached(poll: Poll) -> Tally:
    now = time.monotonic()
    hit = _fallback_cache.get(poll.id)
    if hit and now - hit[0] < FALLBACK_CACHE_SECONDS:
        return hit[1]
    tally = tally_from_record(poll)
    _fallback_cache[poll.id] = (now, tally)
    return tally
