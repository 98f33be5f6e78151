"""Reading a poll's tally, counting a committed ballot in it, and rebuilding a missing one.

Every key of a poll is on its shard (`redis_for_poll`): the scripts here run there, and reading many
polls' tallies costs one round trip per shard that holds some of them.
"""

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache

import redis
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Count, F, Q, QuerySet, Sum
from redis.commands.core import Script

from polls.models import Ballot, Poll
from polls.redis_client import by_shard, redis_for_poll, redis_shards, server_name
from polls.tallies.changes import embedded_changes
from polls.tallies.keys import CHANGED_KEY, STALE_KEY, poll_tally_keys, tally_key, window_key
from polls.words import CLOUD_MAX_TERMS, term_normalised, terms_of_ballot

logger = logging.getLogger(__name__)

# Seconds a tally computed from the record is reused in-process while Redis is down.
FALLBACK_CACHE_SECONDS = 1.0
FALLBACK_CACHE_POLLS = 4096
# How long the tally of an archived poll, rebuilt from the record when it is read, stays in Redis.
ARCHIVED_TALLY_SECONDS = 60 * 60


@dataclass(frozen=True)
class Tally:
    counts: dict[int, int]  # choice id -> selections
    total: int
    version: int
    # A word cloud's: normalised term -> ballots naming it, and its most common spelling. Every term
    # when counted from the record or read for reconciling; the most frequent when read for screens.
    terms: dict[str, int] = field(default_factory=dict)
    spellings: dict[str, str] = field(default_factory=dict)


def tally_from_record(poll: Poll) -> Tally:
    """Counts every ballot of `poll` in one aggregate query."""
    return tallies_from_record([poll])[poll.id]


def tallies_from_record(polls: Sequence[Poll], *, ballot_ids: Sequence[int] | None = None) -> dict[int, Tally]:
    """Counts every ballot of `polls` that is not void (or every one of `ballot_ids`, void or not)
    in one aggregate query grouped by poll (poll id -> tally).

    One query for all of them, not one per poll: the reconciler and the broadcaster read many polls
    at a time, and at a query per poll their cost grew with the number of polls.

    `ballot_ids` are the ballots the reconciler saw counted in Redis during its look: a ballot
    voided after its commit may still have been counted there, so they are counted void or not.
    A void ballot was counted once and taken off once (the void's repair moves the version forward by
    the ballots it takes off), so a tally rebuilt from the record starts at every ballot plus every
    void one: no lower than the version the voided ballots left behind.
    """
    if not polls:
        return {}
    positions = range(1 + max((choice.position for poll in polls for choice in poll.choices.all()), default=0))
    counted = Q(voided_at__isnull=True) if ballot_ids is None else Q()
    # Summing `mask & bit` over the ballots gives (selections of the choice at that position) × bit.
    sums = {f"at{position}": Sum(F("choice_mask").bitand(1 << position), filter=counted) for position in positions}
    ballots = Ballot.objects.filter(poll_id__in=[poll.id for poll in polls])
    if ballot_ids is not None:
        ballots = ballots.filter(id__in=ballot_ids)
    voided = Count("id", filter=Q(voided_at__isnull=False))
    rows = ballots.values("poll_id").annotate(total=Count("id", filter=counted), voided=voided, **sums).order_by()
    by_poll = {row["poll_id"]: row for row in rows}
    terms, spellings = _terms_from_record(ballots.filter(counted), [poll for poll in polls if poll.is_words])
    tallies = {}
    for poll in polls:
        row = by_poll.get(poll.id, {})
        counts = {choice.id: int(row.get(f"at{choice.position}") or 0) // choice.bit for choice in poll.choices.all()}
        total = row.get("total", 0)
        tallies[poll.id] = Tally(
            counts=counts,
            total=total,
            version=total + 2 * row.get("voided", 0),
            terms=terms.get(poll.id, {}),
            spellings=spellings.get(poll.id, {}),
        )
    return tallies


def _terms_from_record(
    ballots: QuerySet[Ballot], polls: Sequence[Poll]
) -> tuple[dict[int, dict[str, int]], dict[int, dict[str, str]]]:
    """The terms of the word clouds among `ballots` (poll id -> normalised term -> ballots), and each
    term's most common spelling (ties: the first typed).

    The record counts each spelling (one aggregate over the ballots' terms); the spellings are folded
    into terms here: a term is counted by its Unicode normalised form, which SQL does not compute
    (PostgreSQL's `lower` does not case-fold). Only distinct spellings leave the database.
    """
    if not polls:
        return {}, {}
    terms: dict[int, Counter[str]] = defaultdict(Counter)
    typed: dict[int, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for poll_id, spelling, ballots_naming in _spellings_counted(ballots.filter(poll_id__in=[p.id for p in polls])):
        normalised = term_normalised(spelling)
        terms[poll_id][normalised] += ballots_naming
        typed[poll_id][normalised][spelling] += ballots_naming
    spellings = {
        poll_id: {normalised: counter.most_common(1)[0][0] for normalised, counter in by_term.items()}
        for poll_id, by_term in typed.items()
    }
    return {poll_id: dict(counter) for poll_id, counter in terms.items()}, spellings


def _spellings_counted(ballots: QuerySet[Ballot]) -> Iterator[tuple[int, str, int]]:
    """(poll id, spelling, ballots naming it) for the ballots' terms, each spelling in the order it was
    first typed (so that `most_common` breaks ties by it)."""
    if connection.vendor == "postgresql":
        try:
            subquery, params = ballots.values("id", "poll_id", "terms").query.sql_with_params()
        except EmptyResultSet:  # e.g. no ballot ids to look at
            return
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT b.poll_id, term, count(*) FROM ({subquery}) b, unnest(string_to_array(b.terms, E'\\n')) term"
                " WHERE b.terms <> '' GROUP BY b.poll_id, term ORDER BY min(b.id)",
                params,
            )
            yield from cursor.fetchall()
        return
    counted: Counter[tuple[int, str]] = Counter()  # SQLite (embedded mode): no arrays to unnest
    for poll_id, stored in ballots.order_by("id").values_list("poll_id", "terms").iterator(chunk_size=5000):
        counted.update((poll_id, spelling) for spelling in terms_of_ballot(stored))
    for (poll_id, spelling), ballots_naming in counted.items():
        yield poll_id, spelling, ballots_naming


# Increments only a tally that exists: creating a partial one from a single ballot would
# show wrong counts. When it is missing the poll is marked stale instead, so the reconciler
# rebuilds it even if a concurrent rebuild read the record before this ballot committed.
# While the reconciler looks at the poll (its window exists), the counted ballot's id goes there.
# A word cloud's terms go to its sorted set, and each spelling's count to its spellings hash, where
# `d:<term>` follows the most common spelling (a tie keeps the one shown).
# KEYS: tally, changed set, stale set, window, words, spellings. ARGV: poll id, ballot id, the number
# of choice ids, the choice ids, then (term, spelling) pairs.
_RECORD_BALLOT = """
redis.call('SADD', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SADD', KEYS[3], ARGV[1])
  return 0
end
local choices = tonumber(ARGV[3])
for i = 4, 3 + choices do
  redis.call('HINCRBY', KEYS[1], 'c:' .. ARGV[i], 1)
end
for i = 4 + choices, #ARGV, 2 do
  local term, spelling = ARGV[i], ARGV[i + 1]
  redis.call('ZINCRBY', KEYS[5], 1, term)
  local times = redis.call('HINCRBY', KEYS[6], 'n:' .. term .. '\t' .. spelling, 1)
  local shown = redis.call('HGET', KEYS[6], 'd:' .. term)
  local shown_times = shown and tonumber(redis.call('HGET', KEYS[6], 'n:' .. term .. '\t' .. shown) or '0')
  if not shown or (shown ~= spelling and times > shown_times) then
    redis.call('HSET', KEYS[6], 'd:' .. term, spelling)
  end
end
redis.call('HINCRBY', KEYS[1], 'total', 1)
if redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('RPUSH', KEYS[4], ARGV[2])
end
return redis.call('HINCRBY', KEYS[1], 'version', 1)
"""

# Stores a tally rebuilt from the record only where there is none, so a rebuild never overwrites
# an increment (or another rebuild) that got there first. KEYS: `keys.poll_tally_keys`. ARGV: the
# hash's field/value pairs, then those of a word cloud: `w:<term>` counts go to its sorted set,
# `n:`/`d:` spellings to its hash (replacing what an earlier tally of the poll left there).
_STORE_IF_ABSENT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('DEL', KEYS[2], KEYS[3])
for i = 1, #ARGV, 2 do
  local name, value = ARGV[i], ARGV[i + 1]
  local prefix = string.sub(name, 1, 2)
  if prefix == 'w:' then
    redis.call('ZADD', KEYS[2], value, string.sub(name, 3))
  elseif prefix == 'n:' or prefix == 'd:' then
    redis.call('HSET', KEYS[3], name, value)
  else
    redis.call('HSET', KEYS[1], name, value)
  end
end
return 1
"""

# The most frequent terms of a word cloud (at most ARGV[1]) with their counts and shown spellings:
# term, count, spelling, term, … KEYS: words, spellings.
_TOP_TERMS = """
local top = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
local found = {}
for i = 1, #top, 2 do
  found[#found + 1] = top[i]
  found[#found + 1] = top[i + 1]
  found[#found + 1] = redis.call('HGET', KEYS[2], 'd:' .. top[i]) or top[i]
end
return found
"""

# Adds the reconciler's corrections to a tally that exists (a missing one is rebuilt instead) and
# moves its version forward by ARGV[1]. ARGV: the version step, then field/amount pairs, where a
# `w:<term>` field is a word cloud's term (in its sorted set; one no ballot names any more leaves it).
# KEYS: tally, words.
_ADD_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
for i = 2, #ARGV, 2 do
  if string.sub(ARGV[i], 1, 2) == 'w:' then
    local term = string.sub(ARGV[i], 3)
    if tonumber(redis.call('ZINCRBY', KEYS[2], ARGV[i + 1], term)) <= 0 then
      redis.call('ZREM', KEYS[2], term)
    end
  else
    redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return redis.call('HINCRBY', KEYS[1], 'version', ARGV[1])
"""

_fallback_cache: dict[int, tuple[float, Tally]] = {}


def tally_record_ballot(*, poll: Poll, ballot_id: int, choice_ids: list[int], terms: Sequence[str] = ()) -> None:
    """Counts one committed ballot (its choices, or a word cloud's terms as typed) in the cached tally
    and marks the poll changed.

    Runs after the ballot's commit. A Redis failure is logged and swallowed: the vote is
    already in the record, and the reconciler repairs the tally when Redis is back.
    """
    client = redis_for_poll(poll)
    if client is None:
        embedded_changes.add(poll.id)
        return
    try:
        tally, words, spellings = poll_tally_keys(poll.id)
        keys = [tally, CHANGED_KEY, STALE_KEY, window_key(poll.id), words, spellings]
        pairs = [item for spelling in terms for item in (term_normalised(spelling), spelling)]
        scripts(client).record_ballot(keys=keys, args=[poll.id, ballot_id, len(choice_ids), *choice_ids, *pairs])
    except redis.RedisError:
        logger.warning("Redis unavailable: ballot for poll %s counted in the record only", poll.id)


def tally_get(poll: Poll, *, cached: dict[str, str] | None = None) -> Tally:
    """The poll's tally: from Redis, rebuilt from the record on a miss, or from the record alone.

    `cached` is the tally's hash when the caller already read it from Redis (the poll cache reads
    it in the same round trip as the poll).
    """
    if cached and not poll.is_words:  # a word cloud's terms are not in the hash
        return tally_from_hash(cached)
    return tallies_get([poll])[poll.id]


def tallies_get(polls: Sequence[Poll]) -> dict[int, Tally]:
    """The tallies of `polls` (poll id -> tally) in one Redis round trip per shard; those missing are
    rebuilt from the record in one query (per shard) and stored."""
    if not redis_shards():
        return tallies_from_record(polls)
    tallies: dict[int, Tally] = {}
    for client, on_shard in by_shard(list(polls)).items():
        try:
            tallies |= _tallies_on(client, on_shard)
        except redis.RedisError:
            tallies |= _tallies_from_record_cached(on_shard)
    return tallies


def _tallies_on(client: redis.Redis, polls: Sequence[Poll]) -> dict[int, Tally]:
    """The tallies of `polls`, all on the shard of `client`, in one round trip (a word cloud's most
    frequent terms too); those missing rebuilt and stored."""
    pipeline = client.pipeline(transaction=False)
    for poll in polls:
        pipeline.hgetall(tally_key(poll.id))
    clouds = [poll for poll in polls if poll.is_words]
    for poll in clouds:
        keys = poll_tally_keys(poll.id)[1:]
        scripts(client).top_terms(keys=keys, args=[terms_to_read(poll)], client=pipeline)
    replies = pipeline.execute()
    hashes = replies[: len(polls)]
    top_terms = dict(zip([poll.id for poll in clouds], replies[len(polls) :], strict=True))
    tallies = {
        poll.id: tally_from_hash(found, top_terms=top_terms.get(poll.id))
        for poll, found in zip(polls, hashes, strict=True)
        if found
    }
    missing = [poll for poll in polls if poll.id not in tallies]
    if missing:
        tallies |= _rebuild(client, missing)
    return tallies


def terms_to_read(poll: Poll) -> int:
    """How many of a word cloud's most frequent terms to read for its screens: enough that those left
    out (hidden by its owner, or filtered as profane) still leave a full cloud, in all but a flood of
    profanity."""
    return CLOUD_MAX_TERMS + len(poll.hidden_terms) + (2 * CLOUD_MAX_TERMS if poll.profanity_filter else 0)


def tally_start(poll: Poll, *, pipeline: redis.client.Pipeline) -> None:
    """Queues the empty tally of a poll just created (after its commit), so its first ballots are
    counted at once instead of finding no tally and waiting for a rebuild from the record."""
    tally = Tally(counts={choice.id: 0 for choice in poll.choices.all()}, total=0, version=0)
    # Registered on the client, run in its pipeline: `scripts` is cached per client, not per pipeline.
    scripts(redis_for_poll(poll)).store_if_absent(keys=poll_tally_keys(poll.id), args=_fields(tally), client=pipeline)


def _rebuild(client: redis.Redis, polls: Sequence[Poll]) -> dict[int, Tally]:
    rebuilt = tallies_from_record(polls)
    for poll_id, tally in rebuilt.items():
        tally_store_if_absent(client, poll_id, tally)
    # An archived poll takes no ballots and is read now and then: its tally is kept for a while, and
    # no reconcile run needs to look at it.
    archived = {poll.id for poll in polls if poll.archived_at}
    for poll_id in archived:
        for key in poll_tally_keys(poll_id):
            client.expire(key, ARCHIVED_TALLY_SECONDS)
    # A ballot committed before the read above but counted in Redis after the store would be
    # counted twice: have the reconciler check these polls once that moment has passed.
    if taking_ballots := set(rebuilt) - archived:
        client.sadd(STALE_KEY, *taking_ballots)
    return rebuilt


def tally_discard(*, poll_ids: set[int]) -> None:
    """Forgets the cached tallies and stale marks of polls deleted or archived.

    On every shard: a poll deleted may be known by its id alone (the reconciler finds a stale mark of
    it), and this is rare (one round trip per shard).
    """
    if not poll_ids:
        return
    for client in redis_shards():
        try:
            pipeline = client.pipeline(transaction=False)
            pipeline.delete(*(key for poll_id in poll_ids for key in poll_tally_keys(poll_id)))
            pipeline.srem(STALE_KEY, *poll_ids)
            pipeline.execute()
        except redis.RedisError:
            logger.warning("Redis %s unavailable: tallies of polls %s kept", server_name(client), sorted(poll_ids))


def tally_store_if_absent(client: redis.Redis, poll_id: int, tally: Tally) -> bool:
    """Stores a tally rebuilt from the record, unless one exists (it may hold newer increments)."""
    return bool(scripts(client).store_if_absent(keys=poll_tally_keys(poll_id), args=_fields(tally)))


def _fields(tally: Tally) -> list[str | int]:
    fields: list[str | int] = ["version", tally.version, "total", tally.total]
    for choice_id, votes in tally.counts.items():
        fields += [f"c:{choice_id}", votes]
    for term, ballots in tally.terms.items():
        # The spelling shown starts with a count of its own, so that another must be typed more often
        # than it from now on to replace it.
        spelling = tally.spellings.get(term, term)
        fields += [f"w:{term}", ballots, f"d:{term}", spelling, f"n:{term}\t{spelling}", ballots]
    return fields


@dataclass(frozen=True)
class Scripts:
    record_ballot: Script
    store_if_absent: Script
    add_if_exists: Script
    top_terms: Script


@cache
def scripts(client: redis.Redis) -> Scripts:
    """The Lua scripts, registered once per client: calls send the script's hash (EVALSHA), not its text."""
    return Scripts(
        record_ballot=client.register_script(_RECORD_BALLOT),
        store_if_absent=client.register_script(_STORE_IF_ABSENT),
        add_if_exists=client.register_script(_ADD_IF_EXISTS),
        top_terms=client.register_script(_TOP_TERMS),
    )


def tally_from_hash(
    cached: dict[str, str], *, top_terms: list[str] | None = None, terms: dict[str, float] | None = None
) -> Tally:
    """A tally from its hash, with a word cloud's most frequent terms as `_TOP_TERMS` returns them, or
    its every term (term -> count) as the reconciler reads them."""
    counts = {int(name[2:]): int(value) for name, value in cached.items() if name.startswith("c:")}
    counted_terms, spellings = {term: int(count) for term, count in (terms or {}).items()}, {}
    for at in range(0, len(top_terms or ()), 3):
        term, count, spelling = top_terms[at : at + 3]
        counted_terms[term], spellings[term] = int(float(count)), spelling
    return Tally(
        counts=counts,
        total=int(cached.get("total", 0)),
        version=int(cached.get("version", 0)),
        terms=counted_terms,
        spellings=spellings,
    )


def _tallies_from_record_cached(polls: Sequence[Poll]) -> dict[int, Tally]:
    """While Redis is down: the record's tallies, each reused for a second in this process."""
    now = time.monotonic()
    fresh = {
        poll.id: hit[1]
        for poll in polls
        if (hit := _fallback_cache.get(poll.id)) and now - hit[0] < FALLBACK_CACHE_SECONDS
    }
    counted = tallies_from_record([poll for poll in polls if poll.id not in fresh])
    if len(_fallback_cache) > FALLBACK_CACHE_POLLS:
        _fallback_cache.clear()  # an outage with many polls must not grow the process without bound
    for poll_id, tally in counted.items():
        _fallback_cache[poll_id] = (now, tally)
    return fresh | counted
