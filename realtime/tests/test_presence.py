"""Presence: the broadcaster renders and sends only polls that someone watches, and a viewer's
process that dies stops counting by itself."""

import asyncio

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from realtime import broadcaster as broadcaster_module
from realtime import presence
from realtime.broadcaster import Broadcaster
from realtime.live import Audience
from realtime.presence import presence_watched_poll_ids
from realtime.tests.helpers import connect, make_poll, version_of, vote

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_poll_nobody_watches_is_neither_rendered_nor_sent(monkeypatch):
    watched, unwatched = make_poll()[0], make_poll(question="Left or right?", choices=["Left", "Right"])[0]
    rendered = []
    live_views = broadcaster_module.live_views

    def spy(*, poll, results):
        rendered.append(poll.id)
        return live_views(poll=poll, results=results)

    monkeypatch.setattr(broadcaster_module, "live_views", spy)

    async def scenario():
        viewer = connect(f"/ws/polls/{watched.slug}/")
        await viewer.connect()
        await viewer.receive_from(timeout=2)  # the snapshot
        broadcaster = Broadcaster(get_channel_layer())
        await broadcaster.tick()  # the first viewer's own mark: a push identical to its snapshot
        rendered.clear()
        await sync_to_async(vote)(unwatched)
        sent_for_unwatched = await broadcaster.tick()
        await sync_to_async(vote)(watched)
        sent_for_watched = await broadcaster.tick()
        pushed = await viewer.receive_from(timeout=2)
        await viewer.disconnect()
        return sent_for_unwatched, sent_for_watched, pushed

    sent_for_unwatched, sent_for_watched, pushed = async_to_sync(scenario)()
    assert sent_for_unwatched == 0
    assert sent_for_watched == len(Audience)
    assert rendered == [watched.id]
    assert version_of(pushed) == 1


def test_a_change_made_before_anyone_watched_reaches_the_first_viewer():
    poll, _ = make_poll()

    async def scenario():
        broadcaster = Broadcaster(get_channel_layer())
        await sync_to_async(vote)(poll)
        assert await broadcaster.tick() == 0  # nobody watches: the change is dropped
        viewer = connect(f"/ws/polls/{poll.slug}/")
        await viewer.connect()
        snapshot = await viewer.receive_from(timeout=2)
        sent = await broadcaster.tick()  # the first viewer marked the poll changed
        await sync_to_async(vote)(poll)
        await broadcaster.tick()
        pushed = await viewer.receive_from(timeout=2)
        await viewer.disconnect()
        return snapshot, sent, pushed

    snapshot, sent, pushed = async_to_sync(scenario)()
    assert version_of(snapshot) == 1
    assert sent == len(Audience)
    assert version_of(pushed) == 2


def test_viewers_are_counted_per_poll_while_connected_and_not_after():
    poll, _ = make_poll()

    async def scenario():
        viewers = [connect(f"/ws/polls/{poll.slug}/") for _ in range(3)]
        for viewer in viewers:
            await viewer.connect()
            await viewer.receive_from(timeout=2)
        await sync_to_async(presence._publish)(presence._republish_all)  # what the refresher does every few seconds
        while_connected = await sync_to_async(presence_watched_poll_ids)()
        for viewer in viewers:
            await viewer.disconnect()
        return while_connected, await sync_to_async(presence_watched_poll_ids)()

    while_connected, after = async_to_sync(scenario)()
    assert while_connected.get(poll.id) == 3
    assert poll.id not in after


@pytest.mark.skipif(not settings.REDIS_URL, reason="presence is shared through Redis only when REDIS_URL is set")
def test_the_counts_of_a_process_that_stops_refreshing_expire_by_themselves(monkeypatch):
    poll, _ = make_poll()
    monkeypatch.setattr(presence, "TTL_SECONDS", 1)

    async def scenario():
        viewer = connect(f"/ws/polls/{poll.slug}/")
        await viewer.connect()
        await viewer.receive_from(timeout=2)
        seen = await sync_to_async(presence_watched_poll_ids)()
        # The process dies: nothing refreshes its counts any more, and nothing says its viewers left.
        for task in list(presence._refreshers.values()):
            task.cancel()
        await asyncio.sleep(1.2)
        after = await sync_to_async(presence_watched_poll_ids)()
        await viewer.disconnect()
        return seen, after

    seen, after = async_to_sync(scenario)()
    assert seen == {poll.id: 1}
    assert after == {}
