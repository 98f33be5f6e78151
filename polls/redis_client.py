"""The one Redis connection pool of a process, or None in embedded mode."""

from functools import cache

import redis
from django.conf import settings

# Votes must not wait on a sick Redis: the record is PostgreSQL, Redis only a cache of it.
SOCKET_TIMEOUT_SECONDS = 0.5


def get_redis() -> redis.Redis | None:
    return _client_for(settings.REDIS_URL) if settings.REDIS_URL else None


@cache
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        health_check_interval=30,
        decode_responses=True,
    )
