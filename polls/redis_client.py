"""The Redis clients of a process: the home server, and the shards the polls' keys are spread over.

- `get_redis()`: the home server (`REDIS_URL`). What is not one poll's: rate limits, presence, the
  reconcile lock and checkpoints, the per-minute vote counts, and (not through here) the Celery broker.
- `redis_for_poll(poll)`: the shard (one of `REDIS_SHARD_URLS`) that holds everything of that poll: its
  tally, its reconcile window, its changed and stale marks, its shared copy and revision, and any key
  of it a Lua script touches with the tally. A script's keys must all be on one server, so a new
  per-poll key goes where `redis_for_poll` says, named by the poll's id as the tally is.
- `redis_shards()`: every shard, for the readers of every poll's marks (the broadcaster, the reconciler);
  `redis_servers()`: the home server and the shards, each once.

A poll's shard follows from its slug, not its id: a page or a vote looks its poll up by slug before
it knows the id, and that lookup reads the poll's copy and its tally in one script on one server
(polls/poll_cache.py). The slug never changes, and it is random, so polls spread evenly.

With one shard (the default: `REDIS_URL` alone) every call returns the same client as `get_redis()`.
Without `REDIS_URL` (embedded mode) there is no Redis: None, and no shards.
"""

import zlib
from functools import cache
from typing import Protocol

import redis
from django.conf import settings

# Votes must not wait on a sick Redis: the record is PostgreSQL, Redis only a cache of it.
SOCKET_TIMEOUT_SECONDS = 0.5


class PollRef(Protocol):
    """A `Poll`, or anything else naming one by its id and slug (e.g. `Poll.objects.only("id", "slug")`)."""

    id: int
    slug: str


def get_redis() -> redis.Redis | None:
    return _client_for(settings.REDIS_URL) if settings.REDIS_URL else None


def redis_shards() -> list[redis.Redis]:
    """Every shard, in the order of `REDIS_SHARD_URLS`; empty in embedded mode."""
    if not settings.REDIS_URL:
        return []
    return [_client_for(url) for url in settings.REDIS_SHARD_URLS]


def redis_servers() -> list[redis.Redis]:
    """The home server and every shard, each once (the home server is usually the first shard too)."""
    return list(dict.fromkeys([home, *redis_shards()])) if (home := get_redis()) else []


def redis_for_poll(poll: PollRef) -> redis.Redis | None:
    """The shard that holds every key of `poll` (None in embedded mode)."""
    return redis_for_slug(poll.slug)


def redis_for_slug(slug: str) -> redis.Redis | None:
    if not settings.REDIS_URL:
        return None
    urls = settings.REDIS_SHARD_URLS
    return _client_for(urls[shard_index(slug, len(urls))])


def shard_index(slug: str, shards: int) -> int:
    """Which of `shards` servers holds the poll of `slug`: the same in every process and every release.
    Another number of shards moves most polls (docs/redis-sharding.md)."""
    return zlib.crc32(slug.encode()) % shards if shards > 1 else 0


def by_shard[T: PollRef](polls: list[T]) -> dict[redis.Redis, list[T]]:
    """`polls` grouped by the shard that holds them, in their order (empty in embedded mode)."""
    grouped: dict[redis.Redis, list[T]] = {}
    for poll in polls:
        client = redis_for_poll(poll)
        if client is not None:
            grouped.setdefault(client, []).append(poll)
    return grouped


def server_name(client: redis.Redis) -> str:
    """host:port/db of a client, for log lines."""
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host', kwargs.get('path', '?'))}:{kwargs.get('port', '')}/{kwargs.get('db', 0)}"


@cache
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        health_check_interval=30,
        decode_responses=True,
    )
