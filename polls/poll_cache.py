"""A per-process cache of polls (row and choices) that a Redis revision invalidates at once.

Every vote and every results read starts by loading its poll; polls barely change, but when
the owner closes one, no process may keep taking votes on it. So each lookup asks Redis for
the poll's revision (one GET, cheaper than an ORM query) and reuses the cached poll only if
the revision is unchanged. Any save or delete of a poll bumps the revision after its commit.
Without Redis (embedded mode, or Redis down) polls are read from the database every time.

Redis key: `pollrev:<slug>` (an integer, absent until the poll first changes).
"""

import copy
import logging
import time
from collections.abc import Callable

import redis
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from polls.models import Poll, polls_updated
from polls.redis_client import get_redis

logger = logging.getLogger(__name__)

# An upper bound on staleness should a change ever reach the database without a signal
# (a queryset `.update()`, a manual SQL fix).
MAX_AGE_SECONDS = 30.0
# A cached poll costs about 10 KiB. Entries past MAX_AGE_SECONDS are reloaded on their next use
# anyway, so they are dropped whenever the cache grows by this many: memory follows the polls in
# use, not every poll a process has ever served (make soak saw workers grow with each new poll).
SWEEP_EVERY = 256
MAX_ENTRIES = 4096
REVISION_TTL_SECONDS = 24 * 60 * 60  # far longer than MAX_AGE_SECONDS, so an expiry cannot hide a change

_cache: dict[str, tuple[str, float, Poll]] = {}


def poll_cached(slug: str, load: Callable[[], Poll]) -> Poll:
    """The poll of `slug` from this process's cache when still current, else from `load()`."""
    return poll_cached_with_hash(slug, load, hash_key=None)[0]


def poll_cached_with_hash(
    slug: str, load: Callable[[], Poll], *, hash_key: Callable[[Poll], str] | None
) -> tuple[Poll, dict[str, str] | None]:
    """Like `poll_cached`; when the poll is cached, also reads the Redis hash `hash_key(poll)` in the
    same round trip as the revision (the results read: poll and tally for one network wait).

    The hash is None when it was not read (poll not cached yet, or changed) or Redis is unavailable.
    """
    client = get_redis()
    if client is None:
        return load(), None
    hit = _cache.get(slug)
    try:
        # Read before loading: a change that lands in between leaves a newer revision behind.
        if hit and hash_key:
            pipeline = client.pipeline(transaction=False)
            pipeline.get(_revision_key(slug))
            pipeline.hgetall(hash_key(hit[2]))
            revision, *hashes = pipeline.execute()
        else:  # a plain GET costs less than a pipeline of one
            revision, hashes = client.get(_revision_key(slug)), []
    except redis.RedisError:
        return load(), None
    revision = revision or "0"
    now = time.monotonic()
    if hit and hit[0] == revision and now - hit[1] < MAX_AGE_SECONDS:
        return _private_copy(hit[2]), (hashes[0] if hashes else None)
    poll = load()
    _make_room(now)
    _cache[slug] = (revision, now, poll)
    return _private_copy(poll), None


def _make_room(now: float) -> None:
    if len(_cache) % SWEEP_EVERY == SWEEP_EVERY - 1:
        for slug in [
            slug for slug, (_revision, loaded, _poll) in list(_cache.items()) if now - loaded >= MAX_AGE_SECONDS
        ]:
            _cache.pop(slug, None)  # another thread may have dropped it already
    if len(_cache) >= MAX_ENTRIES:
        _cache.clear()


def poll_changed(slug: str) -> None:
    _cache.pop(slug, None)
    client = get_redis()
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


@receiver(post_save, sender=Poll)
@receiver(post_delete, sender=Poll)
def _poll_saved_or_deleted(sender, instance: Poll, **kwargs) -> None:
    _forget_now_and_bump_after_commit([instance.slug])


@receiver(polls_updated, sender=Poll)
def _polls_updated(sender, slugs: list[str], **kwargs) -> None:
    _forget_now_and_bump_after_commit(slugs)


def _forget_now_and_bump_after_commit(slugs: list[str]) -> None:
    # This process forgets at once; other processes learn after the commit (bumped earlier, one
    # could reload the old row under the new revision and keep it).
    for slug in slugs:
        _cache.pop(slug, None)
    transaction.on_commit(lambda: [poll_changed(slug) for slug in slugs])


def _private_copy(poll: Poll) -> Poll:
    """A copy per caller, so a service that changes its poll never changes another thread's."""
    clone = copy.copy(poll)
    clone._prefetched_objects_cache = dict(poll._prefetched_objects_cache)
    return clone


def _revision_key(slug: str) -> str:
    return f"pollrev:{slug}"
