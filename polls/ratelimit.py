"""Rate limits: sliding-window counters per client address and per voter.

The services call `rate_limit_check` first, before any other check (`services.vote_cast`,
`services.poll_create`), so every door gets the same limits; it raises `RateLimited` with the seconds
to wait.

Fixed windows let a client spend its whole limit at the end of one window and all of it again at
the start of the next: 5,600 votes went through in 48.8 s against a limit of 5,000 a minute. So each
limit's window is cut into `SLICES` slices, and a request is let through only while the requests let
through in the current slice and the `SLICES` before it stay under the limit. Those slices reach back
at least one whole window, so no stretch of time as long as the window ever holds more than the limit;
the price is that a request is remembered up to one slice longer than the window (65 s for a minute).
Refused requests are not counted: a client that keeps retrying gets in once its older requests age out.

Counters live in Redis in production (one Lua script checks and counts every limit of a request, in
one round trip and atomically, so every process shares them) and in this process's memory in
embedded mode, where there is only one process. In Redis they are on the home server, never a poll's
shard: an address's and a voter's counters span every poll, and one script reads them together.

With Redis unreachable the check fails open and logs it: refusing every vote in a hall because
a cache is sick would be worse than a short unthrottled spell, and the record (PostgreSQL, with
one ballot per voter) stays correct either way.
"""

import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings
from redis.commands.core import Script

from polls.redis_client import get_redis
from polls.voters import address_network

logger = logging.getLogger(__name__)

KEY_PREFIX = "ratelimit"
# Slices per window: more remember requests less past the window, at a few more hash fields per key.
SLICES = 12
DAY_SECONDS = 24 * 60 * 60


class RateLimited(Exception):
    """Too many requests; `retry_after` is the whole number of seconds until one more would pass."""

    def __init__(self, *, retry_after: int, message: str) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.message = message


@dataclass(frozen=True)
class _Limit:
    subject: str  # "address" or "voter": what the counter counts by
    value: str
    limit: int
    window: int  # seconds
    message: str

    def key(self, action: str) -> str:
        return f"{KEY_PREFIX}:{action}:{self.subject}:{self.window}:{_digest(self.value)}"


def _now() -> float:
    """The clock the limits read (tests drive it)."""
    return time.time()


def rate_limit_check(*, action: str, ip_address: str | None, voter_key: str | None = None) -> None:
    """Counts one `action` ("vote" or "create") for this address and voter; raises `RateLimited`.

    Does nothing when `settings.RATELIMIT_ENABLE` is off. A missing address or voter is not counted.
    """
    if not settings.RATELIMIT_ENABLE:
        return
    limits = _limits_for(action, ip_address=ip_address, voter_key=voter_key)
    if not limits:
        return
    checks = [(limit.key(action), limit.window * 1000, limit.limit) for limit in limits]
    refusal = _admit(checks, now_ms=int(_now() * 1000))
    if refusal is None:
        return
    exceeded, wait_ms = refusal
    retry_after = max(1, math.ceil(wait_ms / 1000))
    message = f"{limits[exceeded].message} Try again in {_in_words(retry_after)}."
    raise RateLimited(retry_after=retry_after, message=message)


def _limits_for(action: str, *, ip_address: str | None, voter_key: str | None) -> list[_Limit]:
    network = address_network(ip_address)
    window = settings.RATELIMIT_WINDOW
    limits = []
    if action == "vote":
        if network:
            message = "Too many votes from your network."
            limits.append(_Limit("address", network, settings.RATELIMIT_VOTES_PER_ADDRESS, window, message))
        if voter_key:
            message = "Too many votes from you."
            limits.append(_Limit("voter", voter_key, settings.RATELIMIT_VOTES_PER_VOTER, window, message))
    elif action == "create":
        if network:
            message = "Too many new polls from your network."
            limits.append(_Limit("address", network, settings.RATELIMIT_POLLS_PER_ADDRESS, window, message))
            per_day = settings.RATELIMIT_POLLS_PER_ADDRESS_PER_DAY
            polls = "poll" if per_day == 1 else "polls"
            message = f"Your network has made {per_day} {polls} in the last 24 hours, the most it may make in a day."
            limits.append(_Limit("address", network, per_day, DAY_SECONDS, message))
    else:
        raise ValueError(f"unknown rate-limited action {action!r}")
    return limits


def _digest(value: str) -> str:
    # Keys stay short and hold no address or voter key in clear.
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def _in_words(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} seconds"
    if seconds < 120 * 60:
        return f"{math.ceil(seconds / 60)} minutes"
    return f"{math.ceil(seconds / 3600)} hours"


def _slice_width_ms(window_ms: int) -> int:
    # Rounded up, so that SLICES slices always span at least the whole window.
    return -(-window_ms // SLICES)


# KEYS: one hash per limit: slice number -> requests let through in it.
# ARGV: now (ms), SLICES, then each key's window (ms) and limit.
# Returns {0, 0} when the request passes (counted in every key), else {the 1-based number of the
# first limit it exceeds, milliseconds until it would pass}. Nothing is counted when one refuses.
_ADMIT = """
local now, slices = tonumber(ARGV[1]), tonumber(ARGV[2])
local passing = {}
for i, key in ipairs(KEYS) do
  local window, limit = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  local width = math.ceil(window / slices)
  local current = math.floor(now / width)
  local counts, total, stale = {}, 0, {}
  local flat = redis.call('HGETALL', key)
  for j = 1, #flat, 2 do
    local slice = tonumber(flat[j])
    if slice < current - slices then
      stale[#stale + 1] = flat[j]
    else
      counts[slice] = tonumber(flat[j + 1])
      total = total + counts[slice]
    end
  end
  if total >= limit then
    -- The oldest slices age out first: wait for as many as free one place.
    local excess = total - limit + 1
    for slice = current - slices, current do
      excess = excess - (counts[slice] or 0)
      if excess <= 0 then
        return {i, (slice + slices + 1) * width - now}
      end
    end
  end
  passing[i] = {string.format('%d', current), (slices + 1) * width, stale}
end
for i, key in ipairs(KEYS) do
  local current, ttl, stale = unpack(passing[i])
  if #stale > 0 then
    redis.call('HDEL', key, unpack(stale))
  end
  redis.call('HINCRBY', key, current, 1)
  redis.call('PEXPIRE', key, ttl)
end
return {0, 0}
"""


def _admit(checks: list[tuple[str, int, int]], *, now_ms: int) -> tuple[int, int] | None:
    """Counts one request in every (key, window ms, limit) of `checks` if all let it through; else
    (the index of the first check it exceeds, ms until it would pass). None too when the counters
    are unreachable."""
    client = get_redis()
    if client is None:
        return _local_counters.admit(checks, now_ms=now_ms)
    args = [now_ms, SLICES] + [number for _, window_ms, limit in checks for number in (window_ms, limit)]
    try:
        exceeded, wait_ms = _admit_script(client)(keys=[key for key, _, _ in checks], args=args)
    except redis.RedisError as error:
        logger.warning("Rate limits are not enforced: Redis is unreachable (%s)", error)
        return None
    return None if exceeded == 0 else (exceeded - 1, wait_ms)


@cache
def _admit_script(client: redis.Redis) -> Script:
    """Registered once per client: calls send the script's hash (EVALSHA), not its text."""
    return client.register_script(_ADMIT)


class _LocalCounters:
    """The embedded mode's counters, the same sliding windows as `_ADMIT`: one process, so dicts
    under a lock are the whole truth."""

    SWEEP_EVERY_MS = 60_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slices: dict[str, dict[int, int]] = {}
        self._expires_ms: dict[str, int] = {}
        self._next_sweep_ms = 0

    def admit(self, checks: list[tuple[str, int, int]], *, now_ms: int) -> tuple[int, int] | None:
        with self._lock:
            self._sweep(now_ms)
            passing = []
            for index, (key, window_ms, limit) in enumerate(checks):
                width = _slice_width_ms(window_ms)
                current = now_ms // width
                counts = self._slices.get(key, {})
                for slice_ in [slice_ for slice_ in counts if slice_ < current - SLICES]:
                    del counts[slice_]
                excess = sum(counts.values()) - limit + 1
                if excess > 0:
                    for slice_ in range(current - SLICES, current + 1):
                        excess -= counts.get(slice_, 0)
                        if excess <= 0:
                            return index, (slice_ + SLICES + 1) * width - now_ms
                passing.append((key, counts, current, width))
            for key, counts, current, width in passing:
                counts[current] = counts.get(current, 0) + 1
                self._slices[key] = counts
                self._expires_ms[key] = (current + SLICES + 1) * width
            return None

    def _sweep(self, now_ms: int) -> None:
        # Keys whose every slice has aged out are dead weight: dropped once a minute, not per request.
        if now_ms < self._next_sweep_ms:
            return
        for key in [key for key, expires in self._expires_ms.items() if expires <= now_ms]:
            del self._expires_ms[key]
            self._slices.pop(key, None)
        self._next_sweep_ms = now_ms + self.SWEEP_EVERY_MS


_local_counters = _LocalCounters()
