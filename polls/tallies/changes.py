"""The queue of polls whose results changed, which the broadcaster empties on every tick.

Each shard holds the marks of its own polls (the vote's script adds them beside the tally); the
broadcaster empties every shard's.
"""

import logging
import threading

import redis

from polls.redis_client import PollRef, redis_for_poll, redis_shards, server_name
from polls.tallies.keys import CHANGED_KEY

logger = logging.getLogger(__name__)

# The most poll ids one tick takes from a shard; the rest wait for the next tick (a quarter second later).
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


def tally_mark_changed(*, poll: PollRef) -> None:
    """Asks the broadcaster to push this poll again (e.g. after it was closed)."""
    client = redis_for_poll(poll)
    if client is None:
        embedded_changes.add(poll.id)
        return
    try:
        client.sadd(CHANGED_KEY, poll.id)
    except redis.RedisError:
        logger.warning("Redis unavailable: poll %s not marked changed", poll.id)


def tally_pop_changed() -> set[int]:
    """The ids of polls whose results changed since the last call (for the broadcaster).

    A shard that does not answer keeps its marks for a later call: the other shards' polls are pushed.
    """
    shards = redis_shards()
    if not shards:
        return embedded_changes.pop_all()
    poll_ids: set[int] = set()
    for client in shards:
        try:
            poll_ids.update(int(poll_id) for poll_id in client.spop(CHANGED_KEY, POP_AT_MOST) or [])
        except redis.RedisError:
            logger.warning("Redis shard %s unavailable: its polls' changes wait for it", server_name(client))
    return poll_ids
