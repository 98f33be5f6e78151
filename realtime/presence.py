"""Who watches which poll: the number of live viewers of each poll, kept by every ASGI process, so the
broadcaster renders and publishes only polls that someone watches.

Each process counts its own viewers (poll id -> connected sockets) and publishes the counts to
Redis as one hash, `presence:<process>`, whose time to live it refreshes every `REFRESH_SECONDS`: the
counts of a process that dies expire by themselves within `TTL_SECONDS`. The sorted set
`presence:processes` names every process hash (scored by when it expires), so the broadcaster reads
them all in two round trips, without scanning keys.

A poll's first viewer in a process is published at once, and the poll is then marked changed: the
broadcaster reads presence after taking its changed polls, so a change it dropped because nobody
watched yet is pushed on its next tick.

Without Redis (embedded mode) the broadcaster runs in the one ASGI process and reads the counts there.
"""

import asyncio
import logging
import os
import socket
import time
import uuid
import weakref
from collections import Counter

import redis

from polls.redis_client import get_redis
from polls.tallies.changes import tally_mark_changed

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 5.0
TTL_SECONDS = 3 * REFRESH_SECONDS  # two refreshes may be missed (a busy loop, a Redis hiccup)
PROCESSES_KEY = "presence:processes"

_counts: Counter[int] = Counter()  # this process's viewers per poll id
_process_key = f"presence:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
# One refresher per event loop: tasks belong to a loop (tests run one loop per test).
_refreshers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task]" = weakref.WeakKeyDictionary()


async def presence_watch(*, poll_id: int) -> None:
    """Counts one more viewer of `poll_id`; its first one here is published before this returns."""
    _counts[poll_id] += 1
    _keep_refreshing()
    if _counts[poll_id] == 1:
        await asyncio.to_thread(_publish_first_viewer, poll_id)


async def presence_leave(*, poll_id: int) -> None:
    """Counts one viewer fewer; the last one's leaving is published at once."""
    _counts[poll_id] -= 1
    if _counts[poll_id] <= 0:
        del _counts[poll_id]
        await asyncio.to_thread(_publish, lambda client: client.hdel(_process_key, poll_id))


def presence_watched_poll_ids() -> dict[int, int]:
    """Every watched poll with its viewers, over all processes (for the broadcaster)."""
    client = get_redis()
    if client is None:
        return dict(_counts)
    now = time.time()
    pipeline = client.pipeline(transaction=False)
    pipeline.zremrangebyscore(PROCESSES_KEY, "-inf", now)
    pipeline.zrange(PROCESSES_KEY, 0, -1)
    _, process_keys = pipeline.execute()
    if not process_keys:
        return {}
    pipeline = client.pipeline(transaction=False)
    for key in process_keys:
        pipeline.hgetall(key)
    watched: Counter[int] = Counter()
    for counts in pipeline.execute():
        watched.update({int(poll_id): int(viewers) for poll_id, viewers in counts.items()})
    return {poll_id: viewers for poll_id, viewers in watched.items() if viewers > 0}


def _publish_first_viewer(poll_id: int) -> None:
    _publish(lambda client: _write_counts(client, {poll_id: _counts.get(poll_id, 1)}))
    tally_mark_changed(poll_id=poll_id)


def _write_counts(client: redis.Redis, counts: dict[int, int], *, replace: bool = False) -> None:
    pipeline = client.pipeline(transaction=True)
    if replace:
        pipeline.delete(_process_key)
    if counts:
        pipeline.hset(_process_key, mapping=counts)
    pipeline.expire(_process_key, int(TTL_SECONDS))
    pipeline.zadd(PROCESSES_KEY, {_process_key: time.time() + TTL_SECONDS})
    pipeline.execute()


def _publish(write) -> None:
    client = get_redis()
    if client is None:
        return
    try:
        write(client)
    except redis.RedisError:
        # The next refresh publishes the counts again; meanwhile the poll may get no pushes.
        logger.warning("Redis unavailable: presence not published; retried within %ss", REFRESH_SECONDS)


def _keep_refreshing() -> None:
    """Starts this process's refresher on its event loop, unless one runs."""
    loop = asyncio.get_running_loop()
    running = _refreshers.get(loop)
    if get_redis() is None or (running is not None and not running.done()):
        return
    _refreshers[loop] = loop.create_task(_refresh_while_watched(), name="presence refresh")


async def _refresh_while_watched() -> None:
    """Republishes every count while this process has viewers, then lets the hash expire."""
    while _counts:
        await asyncio.sleep(REFRESH_SECONDS)
        await asyncio.to_thread(_publish, _republish_all)


def _republish_all(client: redis.Redis) -> None:
    _write_counts(client, dict(_counts), replace=True)
