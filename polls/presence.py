"""Who is watching, as the ASGI processes publish it (`realtime.presence` writes it): read by the
broadcaster, to push only what someone watches, and by the presenter's console, to count phones.

Each process keeps `local_counts` (poll id -> its sockets watching that poll; `phones_field(event)` ->
its phones of that event) and publishes them as one hash, `presence:<process>`, that expires unless
refreshed; `PROCESSES_KEY` names every such hash. They are on the home server: a hash is a process's,
not a poll's, and the broadcaster reads them all at once. Without Redis (embedded mode) the one
process's own counts are the whole truth.
"""

import time
from collections import Counter

from polls.models import Event
from polls.redis_client import get_redis

PROCESSES_KEY = "presence:processes"
PHONES_PREFIX = "phones:"

local_counts: Counter[int | str] = Counter()


def phones_field(event_id: int) -> str:
    return f"{PHONES_PREFIX}{event_id}"


def presence_counts() -> Counter[str]:
    """Every process's counts summed, by field (a poll id as a string, or a `phones_field`): two round trips."""
    client = get_redis()
    if client is None:
        return Counter({str(field): count for field, count in local_counts.items()})
    pipeline = client.pipeline(transaction=False)
    pipeline.zremrangebyscore(PROCESSES_KEY, "-inf", time.time())
    pipeline.zrange(PROCESSES_KEY, 0, -1)
    _, process_keys = pipeline.execute()
    total: Counter[str] = Counter()
    if not process_keys:
        return total
    pipeline = client.pipeline(transaction=False)
    for key in process_keys:
        pipeline.hgetall(key)
    for counts in pipeline.execute():
        total.update({str(field): int(viewers) for field, viewers in counts.items()})
    return total


def presence_watched_poll_ids() -> dict[int, int]:
    """Every watched poll with its viewers, over all processes (for the broadcaster)."""
    return {int(field): viewers for field, viewers in presence_counts().items() if field.isdigit() and viewers > 0}


def event_phones_connected(*, event: Event) -> int:
    """Phones with the event's page open and live, over all processes (refreshed every few seconds)."""
    return max(0, presence_counts().get(phones_field(event.id), 0))
