"""The queue of polls whose results changed, which the broadcaster empties on every tick."""

import logging
import threading

import redis

from polls.redis_client import get_redis
from polls.tallies.keys import CHANGED_KEY

logger = logging.getLogger(__name__)

# The most poll ids one tick takes; the rest wait for the next tick (a quarter second later).
POP_AT_MOST = 10_000


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


embedded_changes = _EmbeddedChanges()


def tally_mark_changed(*, poll_id: int) -> None:
    """Asks the broadcaster to push this poll again (e.g. after it was closed)."""
    client = get_redis()
    if client is None:
        embedded_changes.add(poll_id)
        return
    try:
        client.sadd(CHANGED_KEY, poll_id)
    except redis.RedisError:
        logger.warning("Redis unavailable: poll %s not marked changed", poll_id)


def tally_pop_changed() -> set[int]:
    """The ids of polls whose results changed since the last call (for the broadcaster)."""
    client = get_redis()
    if client is None:
        return embedded_changes.pop_all()
    poll_ids = client.spop(CHANGED_KEY, POP_AT_MOST) or []
    return {int(poll_id) for poll_id in poll_ids}
