"""Rate limits: fixed-window counters per client address and per voter.

Any door (the API, the HTML vote and create views) calls `rate_limit_check` before doing the
work; it raises `RateLimited` with the seconds to wait. Counters live in Redis in production
(INCR and EXPIRE in one MULTI/EXEC, so every process shares them atomically) and in this
process's memory in embedded mode, where there is only one process.

With Redis unreachable the check fails open and logs it: refusing every vote in a hall because
a cache is sick would be worse than a short unthrottled spell, and the record (PostgreSQL, with
one ballot per voter) stays correct either way.
"""

import hashlib
import ipaddress
import logging
import math
import threading
import time
from dataclasses import dataclass

import redis
from django.conf import settings

from polls.redis_client import get_redis

logger = logging.getLogger(__name__)

KEY_PREFIX = "ratelimit"


class RateLimited(Exception):
    """Too many requests; `retry_after` is the whole number of seconds until the window resets."""

    def __init__(self, *, retry_after: int, message: str) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.message = message


@dataclass(frozen=True)
class _Limit:
    subject: str  # "address" or "voter": what the counter counts by
    value: str
    limit: int
    message: str


def rate_limit_check(*, action: str, ip_address: str | None, voter_key: str | None = None) -> None:
    """Counts one `action` ("vote" or "create") for this address and voter; raises `RateLimited`.

    Does nothing when `settings.RATELIMIT_ENABLE` is off. A missing address or voter is not counted.
    """
    if not settings.RATELIMIT_ENABLE:
        return
    limits = _limits_for(action, ip_address=ip_address, voter_key=voter_key)
    if not limits:
        return
    window = settings.RATELIMIT_WINDOW
    now = time.time()
    window_index = int(now // window)
    keys = [f"{KEY_PREFIX}:{action}:{limit.subject}:{_digest(limit.value)}:{window_index}" for limit in limits]
    counts = _increment(keys, window=window)
    if counts is None:
        return
    retry_after = max(1, math.ceil((window_index + 1) * window - now))
    for limit, count in zip(limits, counts, strict=True):
        if count > limit.limit:
            raise RateLimited(retry_after=retry_after, message=f"{limit.message} Try again in {retry_after} seconds.")


def address_network(ip_address: str | None) -> str | None:
    """The network a client is counted by: its IPv4 address, or the /64 of an IPv6 address.

    One phone or household holds a whole IPv6 /64, so counting single addresses would let it
    rotate through billions of them.
    """
    if not ip_address:
        return None
    try:
        address = ipaddress.ip_address(ip_address)
    except ValueError:
        return None
    if address.version == 6:
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _limits_for(action: str, *, ip_address: str | None, voter_key: str | None) -> list[_Limit]:
    network = address_network(ip_address)
    limits = []
    if action == "vote":
        if network:
            limits.append(
                _Limit("address", network, settings.RATELIMIT_VOTES_PER_ADDRESS, "Too many votes from your network.")
            )
        if voter_key:
            limits.append(_Limit("voter", voter_key, settings.RATELIMIT_VOTES_PER_VOTER, "Too many votes from you."))
    elif action == "create":
        if network:
            limits.append(
                _Limit(
                    "address", network, settings.RATELIMIT_POLLS_PER_ADDRESS, "Too many new polls from your network."
                )
            )
    else:
        raise ValueError(f"unknown rate-limited action {action!r}")
    return limits


def _digest(value: str) -> str:
    # Keys stay short and hold no address or voter key in clear.
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def _increment(keys: list[str], *, window: int) -> list[int] | None:
    """Adds one to each counter and returns the new counts; None when the counters are unreachable."""
    client = get_redis()
    if client is None:
        return _local_counters.increment(keys, window=window)
    try:
        with client.pipeline(transaction=True) as pipe:
            for key in keys:
                pipe.incr(key)
                # Keys are named by their window, so re-arming the expiry only ever keeps a key
                # one window past its end.
                pipe.expire(key, window + 1)
            results = pipe.execute()
    except redis.RedisError as error:
        logger.warning("Rate limits are not enforced: Redis is unreachable (%s)", error)
        return None
    return [int(count) for count in results[0::2]]


class _LocalCounters:
    """The embedded mode's counters: one process, so a dict under a lock is the whole truth."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._window_index: int | None = None

    def increment(self, keys: list[str], *, window: int) -> list[int]:
        current = int(time.time() // window)
        with self._lock:
            if self._window_index != current:
                # Every key names its window: at a new window the old counts are dead weight.
                self._counts = {}
                self._window_index = current
            for key in keys:
                self._counts[key] = self._counts.get(key, 0) + 1
            return [self._counts[key] for key in keys]

    def clear(self) -> None:
        with self._lock:
            self._counts = {}


_local_counters = _LocalCounters()


def rate_limits_reset() -> None:
    """Forgets the in-process counters (tests; Redis counters expire on their own)."""
    _local_counters.clear()
