import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer

from realtime.broadcaster import Broadcaster
from realtime.hub import hub
from realtime.tests.helpers import connect, make_poll, version_of, vote

# Consumers reach the database through database_sync_to_async: these tests commit for real.
pytestmark = pytest.mark.django_db(transaction=True)


async def _viewer(poll):
    ws = connect(f"/ws/polls/{poll.slug}/")
    connected, _ = await ws.connect()
    assert connected
    return ws, await ws.receive_from(timeout=2)


async def _pushed(ws) -> list[str]:
    received = []
    while not await ws.receive_nothing(timeout=0.3):
        received.append(await ws.receive_from(timeout=1))
    return received


def _public_group(poll) -> str:
    return f"{poll.group_name}.public"


def _record_groups(monkeypatch, layer, method: str) -> list[str]:
    """The groups passed to `layer.<method>` (group_add or group_discard) from now on."""
    groups = []
    original = getattr(layer, method)

    async def recording(group, channel):
        groups.append(group)
        await original(group, channel)

    monkeypatch.setattr(layer, method, recording)
    return groups


def _push(version: int) -> dict:
    return {"type": "results.push", "html": f'<div data-version="{version}"></div>', "version": version}


def test_two_viewers_of_a_poll_in_one_process_both_get_a_push_through_one_membership(monkeypatch):
    poll, _ = make_poll()
    layer = get_channel_layer()
    joined = _record_groups(monkeypatch, layer, "group_add")

    async def scenario():
        (first, _), (second, _) = await _viewer(poll), await _viewer(poll)
        await sync_to_async(vote)(poll, 1)
        await Broadcaster(layer).tick()
        pushed = [await _pushed(first), await _pushed(second)]
        await first.disconnect()
        await second.disconnect()
        return pushed

    first_pushes, second_pushes = async_to_sync(scenario)()
    assert [version_of(html) for html in first_pushes] == [1]
    assert [version_of(html) for html in second_pushes] == [1]
    assert "1 vote<" in second_pushes[0]
    assert joined == [_public_group(poll)]


def test_a_viewer_that_left_gets_nothing_and_the_hub_leaves_the_group_after_the_last_one(monkeypatch):
    poll, _ = make_poll()
    layer = get_channel_layer()
    left = _record_groups(monkeypatch, layer, "group_discard")

    async def scenario():
        (leaving, _), (staying, _) = await _viewer(poll), await _viewer(poll)
        await leaving.disconnect()
        left_after_one = list(left)
        await layer.group_send(_public_group(poll), _push(5))
        pushed = [await _pushed(leaving), await _pushed(staying)]
        await staying.disconnect()
        return left_after_one, pushed, hub().viewers(_public_group(poll))

    left_after_one, (to_leaving, to_staying), viewers_at_the_end = async_to_sync(scenario)()
    assert left_after_one == []
    assert to_leaving == []
    assert [version_of(html) for html in to_staying] == [5]
    assert left == [_public_group(poll)]
    assert viewers_at_the_end == frozenset()


def test_a_push_older_than_what_a_viewer_has_reaches_only_viewers_that_have_less():
    poll, _ = make_poll()
    vote(poll)

    async def scenario():
        behind, _ = await _viewer(poll)  # version 1
        await sync_to_async(vote)(poll)
        await sync_to_async(vote)(poll)
        ahead, _ = await _viewer(poll)  # version 3
        await get_channel_layer().group_send(_public_group(poll), _push(2))
        pushed = [await _pushed(behind), await _pushed(ahead)]
        await behind.disconnect()
        await ahead.disconnect()
        return pushed

    to_behind, to_ahead = async_to_sync(scenario)()
    assert [version_of(html) for html in to_behind] == [2]
    assert to_ahead == []


def test_a_viewer_of_another_poll_gets_nothing():
    poll, _ = make_poll()
    other_poll, _ = make_poll(question="Left or right?", choices=["Left", "Right"])

    async def scenario():
        (watching, _), (elsewhere, _) = await _viewer(poll), await _viewer(other_poll)
        await sync_to_async(vote)(poll)
        await Broadcaster(get_channel_layer()).tick()
        pushed = [await _pushed(watching), await _pushed(elsewhere)]
        await watching.disconnect()
        await elsewhere.disconnect()
        return pushed

    to_watching, to_elsewhere = async_to_sync(scenario)()
    assert [version_of(html) for html in to_watching] == [1]
    assert to_elsewhere == []


def test_a_big_audience_gets_the_newest_push_after_a_wait_instead_of_every_push(settings):
    settings.LIVE_SENDS_PER_SECOND = 1  # two viewers: 2 s between pushes, so this audience counts as big
    poll, _ = make_poll()

    async def scenario():
        viewers = [(await _viewer(poll))[0], (await _viewer(poll))[0]]
        layer = get_channel_layer()
        await layer.group_send(_public_group(poll), _push(1))
        received = [[await ws.receive_from(timeout=5)] for ws in viewers]
        # Within the wait that follows: only the newest of these is handed out, once the wait is over.
        for version in (2, 3):
            await layer.group_send(_public_group(poll), _push(version))
        for ws, pushes in zip(viewers, received, strict=True):
            pushes.append(await ws.receive_from(timeout=5))
            assert await ws.receive_nothing(timeout=0.3)
        for ws in viewers:
            await ws.disconnect()
        return received

    for pushes in async_to_sync(scenario)():
        assert [version_of(html) for html in pushes] == [1, 3]
