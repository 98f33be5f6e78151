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
- `tally:stale`: set of poll ids whose cached tally may miss a ballot (see `_RECORD_BALLOT`).
"""

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import redis
from django.db.models import Count, F, Sum
from redis.commands.core import Script

from polls.models import Ballot, Poll
from polls.redis_client import get_redis

logger = logging.getLogger(__name__)

CHANGED_KEY = "tally:changed"
STALE_KEY = "tally:stale"
# Seconds a tally computed from the record is reused in-process while Redis is down.
FALLBACK_CACHE_SECONDS = 1.0
# How long the reconciler waits for ballots committed before its first look to reach Redis: far
# longer than the moment between a ballot's commit and its increment (milliseconds). While votes
# flow, a repaired tally can stay short by the votes of this window until the next run, so it is
# kept short (make chaos: 0.5 s left 1-7 votes a choice uncounted after Redis was killed). Were it
# ever shorter than an increment's delay, the next run would take the double count off again.
SETTLE_SECONDS = 0.2


@dataclass(frozen=True)
class Tally:
    counts: dict[int, int]  # choice id -> selections
    total: int
    version: int


def tally_key(poll_id: int) -> str:
    return f"tally:{poll_id}"


def tally_from_record(poll: Poll) -> Tally:
    """Counts every ballot of `poll` in one aggregate query."""
    return tallies_from_record([poll])[poll.id]


def tallies_from_record(polls: Sequence[Poll]) -> dict[int, Tally]:
    """Counts every ballot of `polls` in one aggregate query grouped by poll (poll id -> tally).

    One query for all of them, not one per poll: the reconciler reads every active poll twice
    a run, and at a query per poll its run grew with their number (make soak: 0.3 to 1.3 s).
    """
    if not polls:
        return {}
    positions = range(1 + max((choice.position for poll in polls for choice in poll.choices.all()), default=0))
    # Summing `mask & bit` over the ballots gives (selections of the choice at that position) × bit.
    sums = {f"at{position}": Sum(F("choice_mask").bitand(1 << position)) for position in positions}
    rows = (
        Ballot.objects.filter(poll_id__in=[poll.id for poll in polls])
        .values("poll_id")
        .annotate(total=Count("id"), **sums)
        .order_by()
    )
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
_RECORD_BALLOT = """
redis.call('SADD', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SADD', KEYS[3], ARGV[1])
  return 0
end
for i = 2, #ARGV do
  redis.call('HINCRBY', KEYS[1], 'c:' .. ARGV[i], 1)
end
redis.call('HINCRBY', KEYS[1], 'total', 1)
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


def tally_record_ballot(*, poll_id: int, choice_ids: list[int]) -> None:
    """Counts one committed ballot in the cached tally and marks the poll changed.

    Runs after the ballot's commit. A Redis failure is logged and swallowed: the vote is
    already in the record, and the reconciler repairs the tally when Redis is back.
    """
    client = get_redis()
    if client is None:
        _embedded_changes.add(poll_id)
        return
    try:
        _scripts(client).record_ballot(keys=[tally_key(poll_id), CHANGED_KEY, STALE_KEY], args=[poll_id, *choice_ids])
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

    Votes keep arriving while this looks, and each ballot reaches Redis a moment after its
    commit, so one comparison cannot tell a lost increment from one still on its way; replacing
    the tally with the record would count such a ballot twice. Instead it reads the record, waits
    until every ballot in it has surely been counted (`SETTLE_SECONDS`), reads the tallies, then
    the record again. A count below the first reading certainly lost increments; a count above the
    second certainly counted something twice; only that certain part is added or taken off, with
    HINCRBY, so increments landing meanwhile still count once. While votes flow a tally may stay
    up to `SETTLE_SECONDS` worth of votes short until the next run; once they stop it is exact.
    """
    client = get_redis()
    if client is None or not polls:
        return 0
    before = tallies_from_record(polls)
    time.sleep(SETTLE_SECONDS)
    pipeline = client.pipeline(transaction=False)
    for poll in polls:
        pipeline.hgetall(tally_key(poll.id))
    cached = dict(zip((poll.id for poll in polls), pipeline.execute(), strict=True))
    record = tallies_from_record(polls)  # read after the tallies, as the comparison needs
    repaired = 0
    for poll in polls:
        after = record[poll.id]
        if not cached[poll.id]:
            repaired += _rebuild_missing(client, poll.id, after, quiet=before[poll.id] == after)
            continue
        correction = _certain_drift(before[poll.id], _tally_from_hash(cached[poll.id]), after)
        if correction:
            args = [max(1, abs(correction.get("total", 0)))] + [item for pair in correction.items() for item in pair]
            if _scripts(client).add_if_exists(keys=[tally_key(poll.id)], args=args):
                logger.info(
                    "Poll %s: tally corrected by %s (record %s then %s, cached %s)",
                    poll.id,
                    correction,
                    before[poll.id].total,
                    after.total,
                    cached[poll.id].get("total"),
                )
                client.sadd(CHANGED_KEY, poll.id)
                repaired += 1
        elif before[poll.id] == after:
            client.srem(STALE_KEY, poll.id)  # no vote while looking and nothing off: certainly exact
    return repaired


def _rebuild_missing(client: redis.Redis, poll_id: int, record: Tally, *, quiet: bool) -> int:
    """A tally Redis lost is rebuilt from the record, unless a reader rebuilt it meanwhile. Unless no
    vote came while looking (`quiet`), it stays marked stale: a ballot in flight during the rebuild
    would be counted twice, and the next run's comparison takes that off."""
    if not _store(client, poll_id, record, expected_version=-1):
        return 0
    if quiet:
        client.srem(STALE_KEY, poll_id)
    else:
        client.sadd(STALE_KEY, poll_id)
    client.sadd(CHANGED_KEY, poll_id)
    return 1


def _certain_drift(before: Tally, cached: Tally, after: Tally) -> dict[str, int]:
    """Field -> amount to add: what the cached tally certainly lacks (below `before`) or certainly
    has too much of (above `after`); nothing where it lies between the two readings."""
    correction = {}
    fields = {"total": (before.total, cached.total, after.total)} | {
        f"c:{choice_id}": (before.counts.get(choice_id, 0), cached.counts.get(choice_id, 0), votes)
        for choice_id, votes in after.counts.items()
    }
    for field, (low, have, high) in fields.items():
        if have < low:
            correction[field] = low - have
        elif have > high:
            correction[field] = high - have
    return correction


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
