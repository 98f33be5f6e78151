"""Several broadcasters, one sender: the lease in the real Redis (realtime.leadership), in this process
and across real `manage.py broadcast` processes."""

import asyncio
import signal
import time
import uuid

import pytest
import redis
import redis.asyncio
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from websockets.sync.client import connect as connect_socket

from crowdtick.tests import processes
from realtime.broadcaster import Broadcaster
from realtime.leadership import LEASE_KEY, LEASE_SECONDS, BroadcastLease
from realtime.live import Audience
from realtime.tests.helpers import connect, make_poll, version_of, vote

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not settings.REDIS_URL, reason="the lease lives in Redis; embedded mode runs one broadcaster"),
]


def _lease(key: str, **timing: float) -> BroadcastLease:
    return BroadcastLease(redis.asyncio.from_url(settings.REDIS_URL), key=key, **timing)


def _key() -> str:
    return f"test:broadcaster-lease:{uuid.uuid4().hex}"


class CountingBroadcaster(Broadcaster):
    """A broadcaster that adds up the group messages its ticks sent."""

    sent = 0

    async def tick(self) -> int:
        sent = await super().tick()
        self.sent += sent
        return sent


class SlowLayer:
    """The real channel layer behind a slow network: every group send waits `delay` seconds first."""

    def __init__(self, layer, delay: float) -> None:
        self.layer, self.delay = layer, delay

    async def group_send(self, group: str, message: dict) -> None:
        await asyncio.sleep(self.delay)
        await self.layer.group_send(group, message)


async def _until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.05)


def test_one_broadcaster_holds_the_lease_and_a_standby_takes_it_once_released():
    async def scenario():
        key = _key()
        first, second = _lease(key), _lease(key)
        assert await first.hold() and first.taken_over and first.held()
        assert not await second.hold() and not second.held()
        assert await first.hold() and not first.taken_over  # renewed, not taken again
        assert await first.client.get(key) == first.holder.encode()  # the value names the holder
        await first.release()
        assert not first.held() and await first.client.get(key) is None
        assert await second.hold() and second.taken_over
        assert not await first.hold()
        await second.release()

    async_to_sync(scenario)()


def test_a_holder_that_stops_renewing_is_replaced_when_its_lease_runs_out_and_finds_it_lost():
    async def scenario():
        key = _key()
        stalled, standby = _lease(key, seconds=0.5, margin=0.1), _lease(key, seconds=0.5, margin=0.1)
        assert await stalled.hold()
        assert not await standby.hold()
        await asyncio.sleep(0.6)  # the stalled holder does not renew
        assert not stalled.held()  # its own clock stopped its sends before Redis let the lease go
        assert await standby.hold() and standby.taken_over
        assert not await stalled.hold() and not stalled.held()  # lost: it stands by now
        assert await stalled.client.get(key) == standby.holder.encode()
        await standby.release()
        assert await stalled.hold() and stalled.taken_over  # and takes it back when free
        await stalled.release()

    async_to_sync(scenario)()


def test_of_two_running_broadcasters_one_pushes_and_the_other_takes_over_when_it_is_stopped():
    poll, _ = make_poll()

    async def scenario():
        key = _key()
        viewer = connect(f"/ws/polls/{poll.slug}/")
        await viewer.connect()
        await viewer.receive_from(timeout=2)  # the snapshot
        layer = get_channel_layer()
        first = CountingBroadcaster(layer, lease=_lease(key))
        first_running = asyncio.create_task(first.run())
        await _until(first.lease.held)
        second = CountingBroadcaster(layer, lease=_lease(key))
        second_running = asyncio.create_task(second.run())

        await sync_to_async(vote)(poll, 0)
        assert version_of(await viewer.receive_from(timeout=5)) == 1
        assert first.sent > 0 and second.sent == 0  # the standby took no marks and sent nothing

        first_running.cancel()  # as SIGTERM does in `manage.py broadcast`: it releases the lease
        await asyncio.gather(first_running, return_exceptions=True)
        await sync_to_async(vote)(poll, 1)
        assert version_of(await viewer.receive_from(timeout=5)) == 2
        assert second.sent > 0 and second.lease.held()

        second_running.cancel()
        await asyncio.gather(second_running, return_exceptions=True)
        await viewer.disconnect()

    async_to_sync(scenario)()


def test_a_tick_that_outlives_its_lease_stops_sending_and_leaves_the_rest_to_the_next_holder():
    polls = [make_poll()[0] for _ in range(2)]

    async def scenario():
        key = _key()
        viewers = [connect(f"/ws/polls/{poll.slug}/") for poll in polls]
        for viewer in viewers:
            await viewer.connect()
            await viewer.receive_from(timeout=2)
        layer = get_channel_layer()
        # Sends may start until 0.4 s after the lease was renewed; each takes 0.25 s.
        slow = Broadcaster(SlowLayer(layer, delay=0.25), lease=_lease(key, seconds=0.6, margin=0.2))
        assert await slow.lease.hold()
        for poll in polls:
            await sync_to_async(vote)(poll, 0)
        sent = await slow.tick()
        pushes = len(polls) * len(Audience)  # one per audience of each poll
        assert sent < pushes, "every push was sent, though the lease ran out first"

        # Once the lease has run out in Redis, the next holder pushes what the slow one gave back.
        await asyncio.sleep(0.6)
        successor = Broadcaster(layer, lease=_lease(key))
        assert await successor.lease.hold()
        assert await successor.tick() >= pushes - sent
        for viewer in viewers:
            while (html := await viewer.receive_from(timeout=2)) and version_of(html) != 1:
                pass  # a push the slow broadcaster did send, to another audience of this viewer's poll
            await viewer.disconnect()
        await successor.lease.release()

    async_to_sync(scenario)()


def _holder_pid(home: redis.Redis) -> int | None:
    value = home.get(LEASE_KEY)
    return int(value.decode().split(":")[1]) if value else None


def _wait_for_version(socket, version: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        if version_of(socket.recv(timeout=remaining)) == version:
            return
    pytest.fail(f"version {version} was not pushed within {seconds} s")


def test_two_broadcaster_processes_one_sends_and_the_other_takes_over_when_it_is_killed(tmp_path):
    home = redis.Redis.from_url(settings.REDIS_URL)
    home.delete(LEASE_KEY)
    env = processes.test_database_env(SECRET_KEY="lease-test", RATELIMIT_ENABLE="0", LOG_LEVEL="INFO")
    asgi = processes.uvicorn(processes.free_port(), env, tmp_path / "uvicorn.log", lifespan="off")
    broadcasters = [processes.broadcaster(env, tmp_path / f"broadcaster-{n}.log") for n in (1, 2)]
    poll, _ = make_poll()
    try:
        asgi.start()
        for broadcaster in broadcasters:
            broadcaster.start()
        with connect_socket(f"ws://127.0.0.1:{asgi.port}/ws/polls/{poll.slug}/", origin=asgi.url) as viewer:
            viewer.recv(timeout=10)  # the snapshot
            deadline = time.monotonic() + 30
            while _holder_pid(home) not in {b.process.pid for b in broadcasters}:
                assert time.monotonic() < deadline, "no broadcaster took the lease"
                time.sleep(0.1)
            holder, standby = sorted(broadcasters, key=lambda b: b.process.pid != _holder_pid(home))
            vote(poll, 0)
            _wait_for_version(viewer, 1, seconds=10)

            holder.stop(signal.SIGKILL)  # no release: the standby waits for the lease to run out
            vote(poll, 1)
            _wait_for_version(viewer, 2, seconds=LEASE_SECONDS + 10)
            assert _holder_pid(home) == standby.process.pid
            assert "took the lease" in standby.log.read_text()

            standby.stop(signal.SIGTERM)
            assert standby.process.returncode == 0
            assert home.get(LEASE_KEY) is None  # released on the way out, not left to run out
            assert "released the lease" in standby.log.read_text()
    finally:
        for server in (*broadcasters, asgi):
            server.stop()
