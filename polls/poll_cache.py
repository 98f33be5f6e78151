"""Polls (row and choices) cached at two levels, both checked against a revision number in Redis.

Every vote and every page starts by loading its poll; polls barely change, but when the owner
closes one, no process may keep taking votes on it. So a lookup is one Redis round trip (one Lua
script, `_LOOKUP`) that returns the poll's revision and, when needed, the shared copy of the poll
and its tally:

- this process keeps the polls it served lately, bounded by their size in memory (`MAX_BYTES`),
  least recently used first out, and uses one while its revision is current;
- Redis keeps a shared copy of each poll in use (`pollcopy:<slug>`: its id, the revision it was
  read at, and the row and choices as JSON), so a process that has not served a poll yet (thousands
  of polls, a new process) reads it there rather than in the database;
- on a miss at both levels, the database (two queries); the copy is then stored for every process.

Every save or delete of a poll bumps its revision after the commit (`pollrev:<slug>`), which makes
both copies stale at once. A new poll needs no bump: its copy is stored when it is created
(`poll_cache_prime`), so its first voters never reach the database for it. Without Redis (embedded
mode, or Redis down) polls are read from the database every time.

With several Redis shards (`REDIS_SHARD_URLS`), the lookup still costs one round trip because every
key it reads is on one server: the poll's shard is chosen by its slug (`polls.redis_client`), which is
all a lookup knows, and the poll's tally (named by its id) lives on that same shard. Choosing by id
would put the tally on one server and the copy, which a lookup must find by slug before it knows the
id, on another: a second round trip on every results read. The slug is on every `Poll` and never
changes, so every other user of a poll's keys finds the same shard from the poll.
"""

import copy
import json
import logging
import threading
import time
from collections import OrderedDict
from datetime import datetime
from functools import cache

import redis
from django.db import DEFAULT_DB_ALIAS, connection, transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from redis.commands.core import Script

from polls.models import Choice, Poll, polls_updated
from polls.records import with_choices
from polls.redis_client import redis_for_slug
from polls.tallies.keys import TALLY_KEY_PREFIX

logger = logging.getLogger(__name__)

# An upper bound on staleness should a change ever reach the database without a signal
# (a manual SQL fix): a process rereads the shared copy's revision anyway on every lookup.
MAX_AGE_SECONDS = 30.0
# This process's polls may take about this much memory. A poll's objects are estimated from its
# JSON: a fixed part plus a few bytes per JSON byte (tracemalloc over polls of 2 to 20 choices: 4.8
# KiB for 2 short choices, 14 KiB for 20 long ones), so 16 MiB holds about 3,000 polls of 4 choices.
MAX_BYTES = 16 * 1024 * 1024
POLL_BASE_BYTES = 4096
BYTES_PER_JSON_BYTE = 4
REVISION_TTL_SECONDS = 24 * 60 * 60
# Shorter than a revision's life: when a revision expires (reads as "0" again) no copy read at an
# older "0" can still be there to match it.
COPY_TTL_SECONDS = 60 * 60

# KEYS: the revision, the shared copy. ARGV: "1" to read the copy; the tally key's prefix, or "" not
# to read the tally; the poll's id, or "" to take it from the copy.
# Returns the revision ("0" when none was set), the copy ("" when absent or not asked for), the
# tally hash as a flat list (empty when absent or not asked for).
_LOOKUP = """
local revision = redis.call('GET', KEYS[1]) or '0'
local shared = ''
if ARGV[1] == '1' then
  shared = redis.call('GET', KEYS[2]) or ''
end
local tally = {}
if ARGV[2] ~= '' then
  local poll_id = ARGV[3]
  if poll_id == '' then
    poll_id = string.match(shared, '^(%d+)|') or ''
  end
  if poll_id ~= '' then
    tally = redis.call('HGETALL', ARGV[2] .. poll_id)
  end
end
return {revision, shared, tally}
"""


class _Entry:
    __slots__ = ("revision", "loaded_at", "poll", "size")

    def __init__(self, revision: str, poll: Poll, size: int) -> None:
        self.revision, self.loaded_at, self.poll, self.size = revision, time.monotonic(), poll, size


class _LocalPolls:
    """This process's polls: least recently used first out, within `MAX_BYTES` of estimated memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.size = 0

    def get(self, slug: str) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(slug)
            if entry is not None:
                self._entries.move_to_end(slug)
            return entry

    def put(self, slug: str, entry: _Entry) -> None:
        with self._lock:
            self._drop(slug)
            self._entries[slug] = entry
            self.size += entry.size
            while self.size > MAX_BYTES and len(self._entries) > 1:
                self._drop(next(iter(self._entries)))

    def forget(self, slug: str) -> None:
        with self._lock:
            self._drop(slug)

    def slugs(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def _drop(self, slug: str) -> None:
        entry = self._entries.pop(slug, None)
        if entry is not None:
            self.size -= entry.size


_local = _LocalPolls()
# Polls this thread changed inside a transaction not committed yet: until it commits (and the
# revision is bumped for everyone), this thread's reads of them must see its own change.
_changed_here = threading.local()


def poll_cached(slug: str) -> Poll:
    """The poll of `slug` (choices loaded); raises `Poll.DoesNotExist`."""
    return _lookup(slug, with_tally=False)[0]


def poll_cached_with_tally(slug: str) -> tuple[Poll, dict[str, str] | None]:
    """Like `poll_cached`, with the poll's tally hash read in the same round trip (the results read).

    The hash is None when it could not be read with the poll (neither copy had the poll's id, or
    Redis is unavailable), and empty when there is no tally yet.
    """
    return _lookup(slug, with_tally=True)


def poll_cache_prime(poll: Poll, *, pipeline: redis.client.Pipeline) -> None:
    """Queues the storing of a poll just created (choices loaded) for every process; after its commit.
    `pipeline` is of the poll's shard (`redis_for_poll`)."""
    pipeline.set(_copy_key(poll.slug), _encode(poll, revision="0"), ex=COPY_TTL_SECONDS, nx=True)


def _lookup(slug: str, *, with_tally: bool) -> tuple[Poll, dict[str, str] | None]:
    client = redis_for_slug(slug)
    if client is None or _changed_in_this_transaction(slug):
        return _load(slug), None
    hit = _local.get(slug)
    known_id = str(hit.poll.id) if hit else ""
    try:
        revision, shared, flat_tally = _lookup_script(client)(
            keys=[_revision_key(slug), _copy_key(slug)],
            args=["0" if hit else "1", TALLY_KEY_PREFIX if with_tally else "", known_id],
        )
    except redis.RedisError:
        return _load(slug), None
    # The tally was read when the script knew the poll's id: from this process, or from the shared copy.
    tally_read = with_tally and bool(known_id or shared)
    tally = dict(zip(flat_tally[::2], flat_tally[1::2], strict=True)) if tally_read else None
    if hit and hit.revision == revision and time.monotonic() - hit.loaded_at < MAX_AGE_SECONDS:
        return _private_copy(hit.poll), tally
    poll = _decode(shared) if shared and shared.split("|", 2)[1] == revision else None
    if poll is not None:
        size = len(shared)
    else:
        poll = _load(slug)  # read after the revision: a change landing in between leaves a newer one behind
        encoded = _encode(poll, revision=revision)
        size = len(encoded)
        _store_copy(client, slug, encoded)
    _local.put(slug, _Entry(revision, poll, POLL_BASE_BYTES + size * BYTES_PER_JSON_BYTE))
    return _private_copy(poll), tally


def _changed_in_this_transaction(slug: str) -> bool:
    slugs = getattr(_changed_here, "slugs", None)
    if not slugs:
        return False
    if not connection.in_atomic_block:
        slugs.clear()  # committed (and bumped) or rolled back: the caches are right again
        return False
    return slug in slugs


def _load(slug: str) -> Poll:
    poll = Poll.objects.get(slug=slug)
    return with_choices(poll, Choice.objects.filter(poll_id=poll.id).order_by("position"))


def _store_copy(client: redis.Redis, slug: str, encoded: str) -> None:
    try:
        client.set(_copy_key(slug), encoded, ex=COPY_TTL_SECONDS)
    except redis.RedisError:
        logger.warning("Redis unavailable: the copy of poll %s was not shared", slug)


_POLL_FIELDS = list(Poll._meta.concrete_fields)
_CHOICE_FIELDS = ["id", "poll_id", "text", "position"]


def _encode(poll: Poll, *, revision: str) -> str:
    row = [getattr(poll, field.attname) for field in _POLL_FIELDS]
    choices = [[getattr(choice, name) for name in _CHOICE_FIELDS] for choice in poll.choices.all()]
    return f"{poll.id}|{revision}|" + json.dumps([row, choices], default=_iso_datetime, separators=(",", ":"))


def _iso_datetime(value: object) -> str:
    # Not DjangoJSONEncoder: it cuts datetimes to milliseconds, and a deadline must survive exactly.
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not part of a poll's copy")


def _decode(shared: str) -> Poll | None:
    row, choices = json.loads(shared.split("|", 2)[2])
    if len(row) != len(_POLL_FIELDS):
        return None  # written before a migration added or dropped a field of Poll: a miss, not an error
    values = [field.to_python(value) for field, value in zip(_POLL_FIELDS, row, strict=True)]
    poll = Poll.from_db(DEFAULT_DB_ALIAS, [field.attname for field in _POLL_FIELDS], values)
    return with_choices(poll, [Choice.from_db(DEFAULT_DB_ALIAS, _CHOICE_FIELDS, values) for values in choices])


@cache
def _lookup_script(client: redis.Redis) -> Script:
    """Registered once per client: calls send the script's hash (EVALSHA), not its text."""
    return client.register_script(_LOOKUP)


def poll_changed(slug: str) -> None:
    _local.forget(slug)
    client = redis_for_slug(slug)
    if client is None:
        return
    try:
        pipeline = client.pipeline()
        pipeline.incr(_revision_key(slug))
        pipeline.expire(_revision_key(slug), REVISION_TTL_SECONDS)
        pipeline.execute()
    except redis.RedisError:
        # Other processes may serve the old poll for up to MAX_AGE_SECONDS.
        logger.warning(
            "Redis unavailable: the change of poll %s reaches other processes within %ss", slug, MAX_AGE_SECONDS
        )


def poll_cache_release(*, slugs: list[str]) -> None:
    """Drops the shared copies of polls few will read again (archived), rather than wait an hour."""
    by_client: dict[redis.Redis, list[str]] = {}
    for slug in slugs:
        _local.forget(slug)
        if (client := redis_for_slug(slug)) is not None:
            by_client.setdefault(client, []).append(slug)
    for client, on_shard in by_client.items():
        try:
            client.delete(*(_copy_key(slug) for slug in on_shard))
        except redis.RedisError:
            logger.warning("Redis unavailable: the copies of %s polls expire on their own", len(on_shard))


@receiver(post_save, sender=Poll)
def _poll_saved(sender, instance: Poll, created: bool, **kwargs) -> None:
    if not created:  # nothing could have cached a poll before it existed; poll_cache_prime stores it
        _forget_now_and_bump_after_commit([instance.slug])


@receiver(post_delete, sender=Poll)
def _poll_deleted(sender, instance: Poll, **kwargs) -> None:
    _forget_now_and_bump_after_commit([instance.slug])


@receiver(polls_updated, sender=Poll)
def _polls_updated(sender, slugs: list[str], **kwargs) -> None:
    _forget_now_and_bump_after_commit(slugs)


def _forget_now_and_bump_after_commit(slugs: list[str]) -> None:
    # This process forgets at once; other processes learn after the commit (bumped earlier, one
    # could reload the old row under the new revision and keep it).
    for slug in slugs:
        _local.forget(slug)
    if connection.in_atomic_block:
        _changed_here.slugs = getattr(_changed_here, "slugs", set()) | set(slugs)
    transaction.on_commit(lambda: [poll_changed(slug) for slug in slugs])


def _private_copy(poll: Poll) -> Poll:
    """A copy per caller, so a service that changes its poll never changes another thread's."""
    clone = copy.copy(poll)
    clone._prefetched_objects_cache = dict(poll._prefetched_objects_cache)
    return clone


def _revision_key(slug: str) -> str:
    return f"pollrev:{slug}"


def _copy_key(slug: str) -> str:
    return f"pollcopy:{slug}"
