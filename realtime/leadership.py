"""Which broadcaster sends: a lease in the home Redis, so several can run and exactly one pushes.

Two broadcasters sending at once would race. Pushes from two senders have no order between them, and
the poll page's "results hidden" notice carries no version a viewer could order it by, so a notice
rendered just before a poll closed could land after the results rendered just after. So every
`manage.py broadcast` process asks for one lease, `broadcaster:lease` (redis-py's `Lock`: `SET NX PX`,
renewed by a compare-and-set script), at every tick:

- The holder renews it and ticks. The others stand by, asking again every tick, and take it over when
  the holder stops: at once when it exits cleanly (SIGTERM releases it), within `LEASE_SECONDS` when it
  dies or loses Redis.
- The holder sends only while the lease is surely still its own: until the moment it asked for it, plus
  `LEASE_SECONDS`, less `SEND_MARGIN_SECONDS` for the send in flight. Redis starts counting after it
  receives the request, so the holder stops first. A tick that outlives its lease (a stalled process)
  stops sending, and marks its unsent polls changed, so the next holder pushes them.
- The lease's value names its holder (host, PID and a random part): `redis-cli GET broadcaster:lease`.

In embedded mode there is one ASGI process and no Redis, so no lease (realtime.lifespan).
"""

import logging
import os
import socket
import time
import uuid

import redis.asyncio
from redis.exceptions import LockNotOwnedError, RedisError

logger = logging.getLogger(__name__)

LEASE_KEY = "broadcaster:lease"
LEASE_SECONDS = 4.0  # how long a dead holder keeps its standbys waiting
SEND_MARGIN_SECONDS = 1.0  # a send that starts within the lease ends before Redis lets it go


class BroadcastLease:
    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        key: str = LEASE_KEY,
        seconds: float = LEASE_SECONDS,
        margin: float = SEND_MARGIN_SECONDS,
    ) -> None:
        self.client, self.key, self.seconds, self.margin = client, key, seconds, margin
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lock = self._new_lock()
        self._sends_until = 0.0  # time.monotonic() after which this process must not send
        self.taken_over = False

    @classmethod
    def from_url(cls, url: str) -> "BroadcastLease":
        return cls(redis.asyncio.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0))

    def _new_lock(self):
        # thread_local=False: the token is the process's, whichever thread asks.
        return self.client.lock(self.key, timeout=self.seconds, blocking=False, thread_local=False)

    def held(self) -> bool:
        """Whether this process may send now."""
        return time.monotonic() < self._sends_until

    async def hold(self) -> bool:
        """Takes the lease or renews it; True when this process holds it and may tick. `taken_over` says
        whether it was just taken: another holder may have pushed since this one last did."""
        asked_at = time.monotonic()
        self.taken_over = False
        try:
            if self._lock.local.token is None:  # redis-py's Lock keeps its token there
                if not await self._lock.acquire(token=self.holder):
                    return False
                self.taken_over = True
                logger.info("Broadcaster %s took the lease %s", self.holder, self.key)
            else:
                await self._lock.reacquire()
        except LockNotOwnedError:
            # It ran out (this process stalled for LEASE_SECONDS) and is someone else's, or nobody's.
            logger.warning("Broadcaster %s lost the lease %s", self.holder, self.key)
            self._lock, self._sends_until = self._new_lock(), 0.0
            return False
        except RedisError:
            logger.warning("Broadcaster %s cannot reach Redis for the lease; sends until it runs out", self.holder)
            return self.held()
        self._sends_until = asked_at + self.seconds - self.margin
        return True

    async def release(self) -> None:
        """Lets a standby take over at its next tick rather than after LEASE_SECONDS."""
        self._sends_until = 0.0
        if self._lock.local.token is None:
            return
        try:
            await self._lock.release()
            logger.info("Broadcaster %s released the lease %s", self.holder, self.key)
        except (LockNotOwnedError, RedisError):
            pass  # someone else's already, or it runs out by itself
        self._lock = self._new_lock()
