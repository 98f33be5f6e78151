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

import redis

from polls.presence import PROCESSES_KEY, local_counts, phones_field
from polls.presence import presence_watched_poll_ids as presence_watched_poll_ids
from polls.redis_client import PollRef, get_redis
from polls.tallies.changes import tally_mark_changed

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 5.0
TTL_SECONDS = 3 * REFRESH_SECONDS  # two refreshes may be missed (a busy loop, a Redis hiccup)

_counts = local_counts  # this process's viewers per poll id, and phones per event (polls.presence)
_process_key = f"presence:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
# One refresher per event loop: tasks belong to a loop (tests run one loop per test).
_refreshers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task]" = weakref.WeakKeyDictionary()


async def presence_watch(*, polls: list[PollRef], phone_of_event: int | None = None) -> None:
    """Counts one more viewer of each of `polls` (a poll's page watches one; an event's screen all
    its questions, so the broadcaster pushes the event when one changes), and with `phone_of_event`
    one more phone of that event. The polls new here are published, in one round trip, before this
    returns; the phone count goes with the next refresh."""
    firsts = []
    for poll in polls:
        _counts[poll.id] += 1
        if _counts[poll.id] == 1:
            firsts.append(poll)
    if phone_of_event is not None:
        _counts[phones_field(phone_of_event)] += 1
    _keep_refreshing()
    if firsts:
        await asyncio.to_thread(_publish_first_viewers, firsts)


async def presence_leave(*, poll_ids: list[int], phone_of_event: int | None = None) -> None:
    """Counts one viewer fewer of each of `poll_ids` (and a phone fewer); the polls nobody here watches
    any more are published at once, in one round trip."""
    if phone_of_event is not None:
        field = phones_field(phone_of_event)
        _counts[field] -= 1
        if _counts[field] <= 0:
            del _counts[field]
    lasts = []
    for poll_id in poll_ids:
        _counts[poll_id] -= 1
        if _counts[poll_id] <= 0:
            del _counts[poll_id]
            lasts.append(poll_id)
    if lasts:
        await asyncio.to_thread(_publish, lambda client: client.hdel(_process_key, *lasts))


def _publish_first_viewers(polls: list[PollRef]) -> None:
    _publish(lambda client: _write_counts(client, {poll.id: _counts.get(poll.id, 1) for poll in polls}))
    for poll in polls:
        tally_mark_changed(poll=poll)


def _write_counts(client: redis.Redis, counts: dict[int | str, int], *, replace: bool = False) -> None:
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
