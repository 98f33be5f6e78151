import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.http import HttpResponse
from django.test import Client, override_settings

from polls import services
from polls.voters import VOTER_COOKIE_SALT
from realtime.broadcaster import Broadcaster
from realtime.consumers import CLOSE_POLL_NOT_FOUND
from realtime.tests.helpers import HOST, ORIGIN, connect, make_poll, version_of, vote

# Consumers reach the database through database_sync_to_async, which closes a connection that
# sits inside a test's transaction: these tests commit for real.
pytestmark = pytest.mark.django_db(transaction=True)


def test_it_sends_the_current_results_on_connect():
    poll, _ = make_poll()
    vote(poll, 1)
    vote(poll, 1)

    async def scenario():
        ws = connect(f"/ws/polls/{poll.slug}/")
        connected, _ = await ws.connect()
        assert connected
        snapshot = await ws.receive_from(timeout=2)
        await ws.disconnect()
        return snapshot

    snapshot = async_to_sync(scenario)()
    assert version_of(snapshot) == 2
    assert 'id="live-region" hx-swap-oob="innerHTML"' in snapshot
    assert "100%</strong> · 2 votes" in snapshot


def test_it_forwards_what_the_broadcaster_pushes():
    poll, _ = make_poll()

    async def scenario():
        ws = connect(f"/ws/polls/{poll.slug}/")
        await ws.connect()
        first = await ws.receive_from(timeout=2)
        await _sync(vote)(poll, 0)
        await Broadcaster(get_channel_layer()).tick()
        pushed = await ws.receive_from(timeout=2)
        await ws.disconnect()
        return first, pushed

    first, pushed = async_to_sync(scenario)()
    assert version_of(first) == 0
    assert version_of(pushed) == 1
    assert "1 vote<" in pushed


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([HOST], id="no origin"),
        pytest.param([HOST, (b"origin", b"https://evil.example")], id="another site"),
    ],
)
def test_it_refuses_sockets_from_other_sites_and_without_origin(headers):
    poll, _ = make_poll()

    async def scenario():
        ws = connect(f"/ws/polls/{poll.slug}/", headers=headers)
        connected, _ = await ws.connect()
        await ws.disconnect()
        return connected

    assert async_to_sync(scenario)() is False


def test_it_closes_with_a_code_pages_stop_on_for_unknown_polls_and_wrong_owner_links():
    poll, _ = make_poll()

    async def close_code(path):
        ws = connect(path)
        connected, _ = await ws.connect()
        assert connected
        closed = await ws.receive_output(timeout=2)
        return closed

    for path in ("/ws/polls/nosuchpoll/", f"/ws/polls/{poll.slug}/manage/not-the-token/"):
        closed = async_to_sync(close_code)(path)
        assert closed == {"type": "websocket.close", "code": CLOSE_POLL_NOT_FOUND}


def _receive_all(paths_and_headers, *, before_close=None, closer=None):
    """Connects each path, collects the snapshot, runs `closer` (sync) and a tick, collects pushes."""

    async def scenario():
        sockets = []
        for path, headers in paths_and_headers:
            ws = connect(path, headers=headers)
            connected, _ = await ws.connect()
            assert connected
            sockets.append(ws)
        snapshots = [await ws.receive_from(timeout=2) for ws in sockets]
        broadcaster = Broadcaster(get_channel_layer())
        await broadcaster.tick()  # pushes what the setup changed: a new broadcaster has sent nothing yet
        for ws in sockets:
            while await _next_or_none(ws) is not None:
                pass
        if before_close:
            await _sync(before_close)()
            await broadcaster.tick()
        during = [await _next_or_none(ws) for ws in sockets]
        if closer:
            await _sync(closer)()
            await broadcaster.tick()
        after = [await _next_or_none(ws) for ws in sockets]
        for ws in sockets:
            await ws.disconnect()
        return snapshots, during, after

    return async_to_sync(scenario)()


def test_a_poll_showing_results_after_close_shows_them_to_its_owner_only_until_it_closes():
    poll, token = make_poll(results_visibility="after_close")
    vote(poll, 0)

    def another_vote():
        vote(poll, 1)

    def close():
        services.poll_close(poll=poll)

    public, owner = f"/ws/polls/{poll.slug}/", f"/ws/polls/{poll.slug}/manage/{token}/"
    snapshots, during, after = _receive_all(
        [(public, [ORIGIN, HOST]), (owner, [ORIGIN, HOST])], before_close=another_vote, closer=close
    )
    public_snapshot, owner_snapshot = snapshots
    assert version_of(public_snapshot) is None and "vote" not in public_snapshot.replace("voted", "")
    assert "Results will be shown when the poll closes." in public_snapshot
    assert version_of(owner_snapshot) == 1
    # A vote: the owner sees it; the public is told nothing (not even that something changed).
    assert during[0] is None
    assert version_of(during[1]) == 2
    # The poll closes: now everyone sees the results, and the closed state.
    assert version_of(after[0]) == 2 and 'data-poll-open="0"' in after[0]
    assert version_of(after[1]) == 2 and "Poll closed" in after[1]


def test_a_poll_showing_results_after_voting_shows_them_to_a_browser_that_voted(django_capture_on_commit_callbacks):
    poll, _ = make_poll(results_visibility="after_vote", dedupe="browser")
    browser = Client()
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(f"/p/{poll.slug}/vote/", {"choice": poll.choices.first().id})
    assert response.status_code == 302
    cookie = (b"cookie", f"ct_voter={browser.cookies['ct_voter'].value}".encode())
    tampered = (b"cookie", f"ct_voter={browser.cookies['ct_voter'].value[:-2]}xx".encode())

    path = f"/ws/polls/{poll.slug}/"
    snapshots, _, _ = _receive_all([(path, [ORIGIN, HOST, cookie]), (path, [ORIGIN, HOST, tampered])])
    assert version_of(snapshots[0]) == 1
    assert version_of(snapshots[1]) is None
    assert "Results appear here once you have voted." in snapshots[1]


def test_a_forged_or_unsigned_voter_cookie_gets_the_hidden_view_of_a_poll_showing_results_after_voting(
    django_capture_on_commit_callbacks,
):
    poll, _ = make_poll(results_visibility="after_vote", dedupe="browser")
    browser = Client()
    with django_capture_on_commit_callbacks(execute=True):
        browser.post(f"/p/{poll.slug}/vote/", {"choice": poll.choices.first().id})
    voter_key = browser.cookies["ct_voter"].value.split(":")[0]
    with override_settings(SECRET_KEY="someone-elses-secret-key-not-this-sites"):
        forged = HttpResponse()
        forged.set_signed_cookie("ct_voter", voter_key, salt=VOTER_COOKIE_SALT)

    path = f"/ws/polls/{poll.slug}/"
    snapshots, _, _ = _receive_all(
        [
            (path, [ORIGIN, HOST, (b"cookie", f"ct_voter={voter_key}".encode())]),
            (path, [ORIGIN, HOST, (b"cookie", f"ct_voter={forged.cookies['ct_voter'].value}".encode())]),
        ]
    )
    for cookie, snapshot in zip(["unsigned", "signed with another key"], snapshots, strict=True):
        assert version_of(snapshot) is None, f"an {cookie} cookie was taken for the voter's"
        assert "Results appear here once you have voted." in snapshot


def test_a_viewer_never_gets_a_push_older_than_what_it_has():
    poll, _ = make_poll()
    vote(poll)
    vote(poll)

    async def scenario():
        ws = connect(f"/ws/polls/{poll.slug}/")
        await ws.connect()
        snapshot = await ws.receive_from(timeout=2)
        layer = get_channel_layer()
        stale = {"type": "results.push", "html": '<div data-version="1"></div>', "version": 1}
        fresh = {"type": "results.push", "html": '<div data-version="3"></div>', "version": 3}
        await layer.group_send(f"{poll.group_name}.public", stale)
        await layer.group_send(f"{poll.group_name}.public", fresh)
        received = await ws.receive_from(timeout=2)
        nothing_more = await ws.receive_nothing(timeout=0.3)
        await ws.disconnect()
        return snapshot, received, nothing_more

    snapshot, received, nothing_more = async_to_sync(scenario)()
    assert version_of(snapshot) == 2
    assert version_of(received) == 3
    assert nothing_more


async def _next_or_none(ws):
    if await ws.receive_nothing(timeout=0.5):
        return None
    return await ws.receive_from(timeout=1)


def _sync(function):
    from asgiref.sync import sync_to_async

    return sync_to_async(function)


def test_a_viewer_behind_a_slow_socket_gets_the_newest_push_next_without_holding_up_the_others():
    from realtime.consumers import PollResultsConsumer

    async def scenario():
        slow, fast = PollResultsConsumer(), PollResultsConsumer()
        socket_drains = asyncio.Event()
        slow_sent, fast_sent = [], []

        async def slow_send(message):
            await socket_drains.wait()
            slow_sent.append(message["text"])

        async def fast_send(message):
            fast_sent.append(message["text"])

        slow.base_send, fast.base_send = slow_send, fast_send
        for version in (1, 2, 3):
            for viewer in (slow, fast):
                viewer.push(f'<div data-version="{version}"></div>', version)
        fast_before_the_drain = list(fast_sent)
        socket_drains.set()
        for _ in range(10):  # a few loop turns: the send in flight finishes, then the newest one waiting
            await asyncio.sleep(0)
        return fast_before_the_drain, slow_sent

    fast_sent, slow_sent = async_to_sync(scenario)()
    assert [version_of(html) for html in fast_sent] == [1, 2, 3]
    assert [version_of(html) for html in slow_sent] == [1, 3]


@override_settings(WS_SOCKETS_PER_NETWORK=2)
def test_one_network_holds_at_most_its_share_of_sockets_and_gets_them_back_as_it_closes_them():
    poll, _ = make_poll()

    def from_address(address):
        ws = connect(f"/ws/polls/{poll.slug}/")
        ws.scope["client"] = (address, 50000)  # what the server reads from the connection (or the proxy's header)
        return ws

    async def scenario():
        first, second = from_address("203.0.113.7"), from_address("203.0.113.7")
        assert (await first.connect())[0] and (await second.connect())[0]
        third = from_address("203.0.113.7")
        refused = not (await third.connect())[0]
        # The limit is per network: another address still connects.
        other = from_address("198.51.100.1")
        other_connected = (await other.connect())[0]
        await first.disconnect()
        again = from_address("203.0.113.7")
        reconnected = (await again.connect())[0]
        for ws in (second, other, again):
            await ws.disconnect()
        return refused, other_connected, reconnected

    assert async_to_sync(scenario)() == (True, True, True)


def test_a_deleted_poll_s_screens_are_closed_with_the_code_pages_stop_on():
    poll, token = make_poll()

    async def scenario():
        public, owner = connect(f"/ws/polls/{poll.slug}/"), connect(f"/ws/polls/{poll.slug}/manage/{token}/")
        for ws in (public, owner):
            await ws.connect()
            await ws.receive_from(timeout=2)  # the snapshot
        await _sync(services.poll_delete)(poll=poll)
        closed = [await ws.receive_output(timeout=2) for ws in (public, owner)]
        for ws in (public, owner):
            await ws.wait()
        return closed

    assert async_to_sync(scenario)() == [{"type": "websocket.close", "code": CLOSE_POLL_NOT_FOUND}] * 2
