import time
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from polls import moderation, selectors, services
from polls.redis_client import redis_for_poll
from polls.tallies.changes import tally_mark_changed
from polls.tallies.keys import tally_key
from polls.tallies.reconcile import tally_reconcile_many
from realtime.broadcaster import Broadcaster
from realtime.live import Audience
from realtime.tests.helpers import connect, make_poll, version_of, vote

pytestmark = pytest.mark.django_db(transaction=True)


def _watch(poll, steps):
    """Connects one public viewer, runs each step (sync, then a tick) and returns what each tick sent and pushed."""

    async def scenario():
        ws = connect(f"/ws/polls/{poll.slug}/")
        await ws.connect()
        await ws.receive_from(timeout=2)  # the snapshot
        broadcaster = Broadcaster(get_channel_layer())
        outcomes = []
        for step in steps:
            await sync_to_async(step)()
            sent = await broadcaster.tick()
            pushed = []
            while not await ws.receive_nothing(timeout=0.3):
                pushed.append(await ws.receive_from(timeout=1))
            outcomes.append((sent, pushed))
        await ws.disconnect()
        return outcomes

    return async_to_sync(scenario)()


def test_many_votes_within_a_tick_make_one_push_with_the_full_tally():
    poll, _ = make_poll()

    def twenty_five_votes():
        for i in range(25):
            vote(poll, i % 2)

    def nothing():
        pass

    (sent, pushed), (sent_idle, pushed_idle) = _watch(poll, [twenty_five_votes, nothing])
    assert sent == len(Audience)  # one message per audience group, whatever the number of viewers
    assert len(pushed) == 1
    assert version_of(pushed[0]) == 25
    assert "13 votes" in pushed[0] and "12 votes" in pushed[0]
    assert (sent_idle, pushed_idle) == (0, [])


@pytest.mark.skipif(not settings.REDIS_URL, reason="the cached tally lives in Redis")
def test_it_never_pushes_a_version_lower_than_one_already_pushed():
    poll, _ = make_poll()
    redis = redis_for_poll(poll)

    def three_votes():
        for _ in range(3):
            vote(poll)

    def redis_loses_the_last_two_increments():
        redis.hset(tally_key(poll.id), mapping={"version": 1, "total": 1, f"c:{poll.choices.first().id}": 1})
        tally_mark_changed(poll=poll)

    def the_reconciler_repairs_it_then_a_vote():
        assert tally_reconcile_many([poll]) == 1
        vote(poll)

    (_, first), (sent_after_loss, after_loss), (_, after_repair) = _watch(
        poll, [three_votes, redis_loses_the_last_two_increments, the_reconciler_repairs_it_then_a_vote]
    )
    assert [version_of(html) for html in first] == [3]
    assert sent_after_loss == 0  # held back by the broadcaster itself, not only dropped by the viewer
    assert after_loss == []
    assert [version_of(html) for html in after_repair] == [4]


def test_it_pushes_the_closed_state_when_the_deadline_passes_without_a_vote():
    poll, _ = make_poll(closes_at=timezone.now() + timedelta(seconds=1.5))

    def wait_for_the_deadline():
        time.sleep(max(0.0, (poll.closes_at - timezone.now()).total_seconds()) + 0.2)

    [(_, pushed)] = _watch(poll, [wait_for_the_deadline])
    assert len(pushed) == 1
    assert 'data-poll-open="0"' in pushed[0] and "Poll closed" in pushed[0]
    # The status line comes in the same push: no screen says "Open · closes in …" beside "Poll closed".
    assert '<span class="badge badge-closed">Closed</span>' in pushed[0] and "badge-open" not in pushed[0]


def test_the_broadcast_command_refuses_to_run_without_a_shared_channel_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    try:
        with pytest.raises(CommandError, match="embedded mode"):
            call_command("broadcast")
    finally:
        channel_layers.backends.clear()


def test_what_was_sent_is_remembered_within_a_memory_budget_least_recently_sent_first_out(monkeypatch):
    from realtime import broadcaster as broadcaster_module
    from realtime.live import LiveView

    monkeypatch.setattr(broadcaster_module, "REMEMBERED_BYTES", 250)
    broadcaster = Broadcaster(get_channel_layer())
    for poll_id in range(5):
        assert broadcaster._is_news((poll_id, Audience.PUBLIC), LiveView(html="x" * 100, version=1))
    assert not broadcaster._is_news((4, Audience.PUBLIC), LiveView(html="x" * 100, version=1))  # still remembered
    assert [key[0] for key in broadcaster._sent] == [3, 4]
    assert broadcaster._sent_bytes == 200


def test_a_term_the_owner_hides_leaves_the_live_cloud_on_the_next_tick():
    """Moderation reaches every screen within a second: the next tick (a quarter second) pushes the cloud
    without the term, though no ballot changed the tally's version."""
    poll, _ = services.poll_create(question="One word?", kind="words")
    poll = selectors.poll_get(slug=poll.slug)

    def two_ballots():
        for voter, word in (("a", "Rude"), ("b", "kind")):
            services.vote_cast(poll=poll, choice_ids=[], words=[word], voter_key=voter, ip_address=None)

    def the_owner_hides_a_term():
        moderation.poll_hide_term(poll=selectors.poll_get(slug=poll.slug), term="rude")

    (_, before), (sent, after) = _watch(poll, [two_ballots, the_owner_hides_a_term])
    assert "Rude" in before[-1] and "kind" in before[-1]
    assert sent and len(after) == 1
    assert "Rude" not in after[0] and "kind" in after[0]
    assert version_of(after[0]) == version_of(before[-1])
