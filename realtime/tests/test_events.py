"""An event's sockets: what phones, the big screen and the console get on connect and on every change."""

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.test import TestCase
from django.utils import timezone

from polls import events, services
from polls.events import QuestionInput
from polls.models import Event, Poll
from polls.presence import event_phones_connected
from polls.voters import voter_cookie_value
from realtime.broadcaster import Broadcaster
from realtime.consumers import CLOSE_POLL_NOT_FOUND
from realtime.presence import _publish, _republish_all
from realtime.tests.helpers import HOST, ORIGIN, connect, version_of

pytestmark = pytest.mark.django_db(transaction=True)


def make_event():
    return events.event_create(
        title="All-hands",
        questions=[
            QuestionInput(question="Tea or coffee?", choices=["Tea", "Coffee"]),
            QuestionInput(question="Best talk?", choices=["Keynote", "Panel"]),
        ],
    )


def control(event: Event, action: str, **kwargs) -> Event:
    with TestCase.captureOnCommitCallbacks(execute=True):
        return events.event_control(event=event, action=action, **kwargs)


def cast(poll: Poll, choice: int, voter: str) -> None:
    poll = Poll.objects.get(pk=poll.pk)
    picked = list(poll.choices.all())[choice]
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.vote_cast(poll=poll, choice_ids=[picked.id], voter_key=voter, ip_address=None)


def phone_headers(voter: str) -> list:
    cookie = f"{settings.VOTER_COOKIE_NAME}={voter_cookie_value(voter)}"
    return [ORIGIN, HOST, (b"cookie", cookie.encode())]


async def tick_and_receive(ws) -> str:
    await Broadcaster(get_channel_layer()).tick()
    return await ws.receive_from(timeout=2)


def test_a_phone_gets_the_state_on_connect_then_every_change_the_presenter_makes():
    event, (first, _), token = make_event()

    async def scenario():
        ws = connect(f"/ws/events/{event.code}/")
        assert (await ws.connect())[0]
        seen = [await ws.receive_from(timeout=2)]
        await sync_to_async(control)(event, "next")
        seen.append(await tick_and_receive(ws))
        await sync_to_async(control)(event, "open", seconds=20)
        seen.append(await tick_and_receive(ws))
        await ws.disconnect()
        return seen

    waiting, shown, opened = async_to_sync(scenario)()
    assert "Waiting for the presenter" in waiting
    assert "Tea or coffee?" in shown and 'name="choice"' not in shown
    assert 'name="choice"' in opened and 'data-poll-open="1"' in opened
    assert version_of(waiting) < version_of(shown) < version_of(opened)


def test_a_phone_that_answered_sees_its_answer_is_in_then_its_own_pick_once_revealed():
    event, (first, _), token = make_event()
    event = control(control(event, "next"), "open")
    cast(first, 1, voter="phone-a")

    async def scenario():
        answered = connect(f"/ws/events/{event.code}/", headers=phone_headers("phone-a"))
        other = connect(f"/ws/events/{event.code}/", headers=phone_headers("phone-b"))
        await answered.connect()
        await other.connect()
        first_seen = [await answered.receive_from(timeout=2), await other.receive_from(timeout=2)]
        await sync_to_async(control)(event, "reveal")
        await Broadcaster(get_channel_layer()).tick()
        revealed = [await answered.receive_from(timeout=2), await other.receive_from(timeout=2)]
        await answered.disconnect()
        await other.disconnect()
        return first_seen, revealed

    (mine, theirs), (mine_revealed, theirs_revealed) = async_to_sync(scenario)()
    assert "Your answer is in." in mine and 'name="choice"' not in mine
    assert 'name="choice"' in theirs and "Your answer is in." not in theirs
    assert 'data-mine="p1"' in mine_revealed and 'id="results"' in mine_revealed
    assert 'data-mine=""' in theirs_revealed and 'id="results"' in theirs_revealed


def test_the_big_screen_shows_results_only_once_revealed_and_the_console_always():
    event, (first, _), token = make_event()
    event = control(control(event, "next"), "open")
    cast(first, 0, voter="phone-a")

    async def scenario():
        screen = connect(f"/ws/events/{event.code}/live/")
        presenter = connect(f"/ws/events/{event.code}/manage/{token}/")
        await screen.connect()
        await presenter.connect()
        return await screen.receive_from(timeout=2), await presenter.receive_from(timeout=2)

    screen, presenter = async_to_sync(scenario)()
    assert "Tea or coffee?" in screen and 'id="results"' not in screen
    assert 'id="results"' in presenter and "1 vote<" in presenter


def test_the_window_ending_closes_voting_on_every_phone_within_a_tick():
    event, (first, _), token = make_event()
    event = control(control(event, "next"), "open", seconds=5)

    async def scenario():
        ws = connect(f"/ws/events/{event.code}/")
        await ws.connect()
        before = await ws.receive_from(timeout=2)
        ended = timezone.now() - timedelta(milliseconds=1)
        await sync_to_async(Poll.objects.filter(pk=first.pk).update)(closes_at=ended)
        await sync_to_async(Event.objects.filter(pk=event.pk).update)(closes_at=ended)
        broadcaster = Broadcaster(get_channel_layer())
        broadcaster._deadlines_checked_at = ended - timedelta(seconds=5)
        broadcaster._deadlines_checked_monotonic = 0.0
        await broadcaster.tick()
        after = await ws.receive_from(timeout=2)
        await ws.disconnect()
        return before, after

    before, after = async_to_sync(scenario)()
    assert 'name="choice"' in before
    assert "Voting is closed for this question." in after and 'name="choice"' not in after


def test_an_unknown_code_or_a_wrong_token_closes_with_4404():
    event, _, token = make_event()

    async def scenario(path):
        ws = connect(path)
        await ws.connect()
        return await ws.receive_output(timeout=2)

    for path in ["/ws/events/000000x/", f"/ws/events/{event.code}/manage/wrong/"]:
        assert async_to_sync(scenario)(path) == {"type": "websocket.close", "code": CLOSE_POLL_NOT_FOUND}


def test_phones_are_counted_for_the_console_and_screens_are_not():
    event, _, token = make_event()

    async def scenario():
        phones = [connect(f"/ws/events/{event.code}/") for _ in range(2)]
        screen = connect(f"/ws/events/{event.code}/live/")
        for ws in [*phones, screen]:
            await ws.connect()
            await ws.receive_from(timeout=2)
        await sync_to_async(_publish)(_republish_all)  # what the refresher does every few seconds
        while_connected = await sync_to_async(event_phones_connected)(event=event)
        for ws in [*phones, screen]:
            await ws.disconnect()
        return while_connected

    assert async_to_sync(scenario)() == 2


def test_ending_the_event_reaches_every_screen_within_a_tick():
    event, _, token = make_event()
    event = control(control(event, "next"), "open")

    async def scenario():
        phone = connect(f"/ws/events/{event.code}/")
        screen = connect(f"/ws/events/{event.code}/live/")
        for ws in (phone, screen):
            await ws.connect()
            await ws.receive_from(timeout=2)
        await sync_to_async(control)(event, "end")
        await Broadcaster(get_channel_layer()).tick()
        seen = [await phone.receive_from(timeout=2), await screen.receive_from(timeout=2)]
        for ws in (phone, screen):
            await ws.disconnect()
        return seen

    phone, screen = async_to_sync(scenario)()
    assert "This event has ended" in phone and 'name="choice"' not in phone
    assert "This event has ended" in screen


def test_a_phone_that_says_voted_gets_the_answered_screen_on_the_same_socket():
    event, (first, _), token = make_event()
    event = control(control(event, "next"), "open")

    async def scenario():
        ws = connect(f"/ws/events/{event.code}/", headers=phone_headers("phone-a"))
        await ws.connect()
        before = await ws.receive_from(timeout=2)
        await sync_to_async(cast)(first, 1, voter="phone-a")  # its vote, over HTTP
        await ws.send_to(text_data="voted")
        after = await ws.receive_from(timeout=2)
        await sync_to_async(control)(event, "reveal")
        await Broadcaster(get_channel_layer()).tick()
        revealed = await ws.receive_from(timeout=2)
        await ws.disconnect()
        return before, after, revealed

    before, after, revealed = async_to_sync(scenario)()
    assert 'name="choice"' in before
    assert "Your answer is in." in after and 'name="choice"' not in after
    assert 'data-mine="p1"' in revealed
