"""Two Redis shards, each a real redis-server: polls land on both, every key of a poll on its own shard,
and their tallies, pushes and repairs stay exact (docs/redis-sharding.md).

The first shard is the suite's Redis (also the home server); the second is a private redis-server
started on a free port for each test.
"""

import shutil
import socket
import subprocess
import time
import zlib

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import channel_layers, get_channel_layer
from django.conf import settings
from django.test import Client, TestCase

from crowdtick.tests.processes import free_port
from polls import selectors, services, upkeep
from polls.redis_client import get_redis, redis_for_poll, redis_shards
from polls.tallies.changes import tally_pop_changed
from polls.tallies.counts import tally_from_record, tally_get
from polls.tallies.keys import CHANGED_KEY, STALE_KEY, poll_tally_keys, tally_key, words_key
from polls.tallies.reconcile import RECONCILED_UNTIL_KEY, tally_stale_poll_ids
from realtime.broadcaster import Broadcaster
from realtime.tests.helpers import connect, make_poll, version_of, vote

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not settings.REDIS_URL, reason="shards are Redis servers: needs REDIS_URL"),
]


class SecondShard:
    """A private redis-server, stopped and started again (empty) by PID."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"the second shard's redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def two_shards(settings):
    """REDIS_SHARD_URLS = the suite's Redis, then a private redis-server; the channel layer on both."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not on PATH: the second shard is a redis-server of its own")
    second = SecondShard()
    second.start()
    settings.REDIS_SHARD_URLS = [settings.REDIS_URL, second.url]
    layer = settings.CHANNEL_LAYERS["default"]
    hosts = [{**layer["CONFIG"]["hosts"][0], "address": url} for url in settings.REDIS_SHARD_URLS]
    settings.CHANNEL_LAYERS = {"default": {**layer, "CONFIG": {**layer["CONFIG"], "hosts": hosts}}}
    channel_layers.backends.clear()
    try:
        yield second
    finally:
        channel_layers.backends.clear()
        second.stop()


def polls_on_both_shards(at_least=2):
    """Polls made until each shard holds `at_least` of them (slugs are random): shard index -> polls."""
    by_shard = {0: [], 1: []}
    for n in range(100):
        poll, _ = make_poll(question=f"Question {n}?")
        by_shard[zlib.crc32(poll.slug.encode()) % 2].append(poll)
        if min(len(polls) for polls in by_shard.values()) >= at_least:
            return by_shard
    pytest.fail(f"100 polls and still not {at_least} on each shard: {by_shard}")


def tally_counts(poll):
    cached = redis_for_poll(poll).hgetall(tally_key(poll.id))
    return {field: int(value) for field, value in cached.items() if field != "version"}


def record_counts(poll):
    tally = tally_from_record(poll)
    return {"total": tally.total, **{f"c:{choice_id}": votes for choice_id, votes in tally.counts.items()}}


def test_every_key_of_a_poll_is_on_the_shard_its_slug_names_and_polls_land_on_both(two_shards):
    by_shard = polls_on_both_shards()
    servers = redis_shards()
    assert len(servers) == 2 and servers[0] is get_redis()

    for index, polls in by_shard.items():
        here, there = servers[index], servers[1 - index]
        for n, poll in enumerate(polls):
            for _ in range(n + 1):
                vote(poll, n % 2)
            assert redis_for_poll(poll) is here, f"poll {poll.slug} is not on shard {index}"
            # The tally, the shared copy, the revision and the changed mark: on this shard, none on the other.
            assert here.exists(tally_key(poll.id), f"pollcopy:{poll.slug}") == 2
            assert there.exists(tally_key(poll.id), f"pollcopy:{poll.slug}", f"pollrev:{poll.slug}") == 0
            assert here.sismember(CHANGED_KEY, poll.id) and not there.sismember(CHANGED_KEY, poll.id)
            assert tally_counts(poll) == record_counts(poll) and record_counts(poll)["total"] == n + 1

    # A results read finds the poll and its tally in one script on the poll's shard.
    browser = Client(HTTP_HOST="127.0.0.1")
    for polls in by_shard.values():
        for n, poll in enumerate(polls):
            assert browser.get(f"/api/polls/{poll.slug}/results/").json()["total"] == n + 1

    every_poll = [poll.id for polls in by_shard.values() for poll in polls]
    assert tally_pop_changed() == set(every_poll)  # the broadcaster takes the marks of both shards


def test_a_word_clouds_terms_live_on_its_shard_with_its_tally_and_are_repaired_there(two_shards):
    clouds = {}  # shard index -> a word cloud there
    for n in range(100):
        poll, _ = services.poll_create(question=f"One word {n}?", kind="words")
        clouds.setdefault(zlib.crc32(poll.slug.encode()) % 2, poll)
        if len(clouds) == 2:
            break
    assert len(clouds) == 2, "100 word clouds and all on one shard"
    servers = redis_shards()
    for index, poll in clouds.items():
        poll = selectors.poll_get(slug=poll.slug)
        for voter, word in enumerate(["Rain", "rain", "sun"]):
            with TestCase.captureOnCommitCallbacks(execute=True):
                services.vote_cast(poll=poll, choice_ids=[], words=[word], voter_key=f"v{voter}", ip_address=None)
        here, there = servers[index], servers[1 - index]
        assert here.exists(*poll_tally_keys(poll.id)) == 3 and there.exists(*poll_tally_keys(poll.id)) == 0
        here.zincrby(words_key(poll.id), 4, "sun")  # drift on this shard only
    upkeep.tallies_reconcile()
    for poll in clouds.values():
        assert tally_get(selectors.poll_get(slug=poll.slug)).terms == tally_from_record(poll).terms
        assert tally_from_record(poll).terms == {"rain": 2, "sun": 1}


def test_viewers_of_polls_on_both_shards_get_every_push_over_a_channel_layer_on_both(two_shards):
    by_shard = polls_on_both_shards(at_least=1)
    polls = [by_shard[0][0], by_shard[1][0]]

    async def scenario():
        viewers = [connect(f"/ws/polls/{poll.slug}/") for poll in polls]
        for viewer in viewers:
            await viewer.connect()
            await viewer.receive_from(timeout=2)  # the snapshot
        broadcaster = Broadcaster(get_channel_layer())
        await broadcaster.tick()  # the first viewers' own marks: pushes identical to their snapshots
        for n, poll in enumerate(polls):
            for _ in range(n + 2):
                await sync_to_async(vote)(poll)
        sent = await broadcaster.tick()
        pushed = []
        for viewer in viewers:
            pushed.append([version_of(await viewer.receive_from(timeout=2))])
            while not await viewer.receive_nothing(timeout=0.3):
                pushed[-1].append(version_of(await viewer.receive_from(timeout=1)))
            await viewer.disconnect()
        return sent, pushed

    sent, pushed = async_to_sync(scenario)()
    assert sent > 0
    assert pushed == [[2], [3]]  # each poll's full tally, once, whichever shard holds it


def test_the_reconciler_repairs_tallies_on_both_shards_and_clears_their_stale_marks(two_shards):
    by_shard = polls_on_both_shards()
    servers = redis_shards()
    for polls in by_shard.values():
        drifted, lost = polls[0], polls[1]
        for poll in (drifted, lost):
            vote(poll)
            vote(poll, 1)
        redis_for_poll(drifted).hincrby(tally_key(drifted.id), "total", 5)  # drift nobody cast
        redis_for_poll(lost).delete(tally_key(lost.id))  # lost with its server's memory
        vote(lost)  # finds no tally to count in: marks the poll stale on its own shard
    assert all(server.scard(STALE_KEY) == 1 for server in servers)

    upkeep.tallies_reconcile()

    for polls in by_shard.values():
        for poll in polls[:2]:
            assert tally_counts(poll) == record_counts(poll)
    assert tally_stale_poll_ids() == (set(), True)


def test_with_one_shard_down_the_other_keeps_its_pushes_and_repairs_and_the_lost_one_is_rebuilt(two_shards):
    by_shard = polls_on_both_shards(at_least=1)
    up, down = by_shard[0][0], by_shard[1][0]
    for poll in (up, down):
        vote(poll)
    tally_pop_changed()
    two_shards.stop()

    vote(up)
    vote(down)  # still a ballot: the record holds it, and its shard is repaired when it returns
    assert tally_pop_changed() == {up.id}
    redis_for_poll(up).hincrby(tally_key(up.id), "total", 3)
    upkeep.tallies_reconcile()
    assert tally_counts(up) == record_counts(up)
    # The run was not complete: its checkpoint stays back, so the next one looks at the lost shard's ballots.
    assert get_redis().get(RECONCILED_UNTIL_KEY) is None

    two_shards.start()  # back, empty
    upkeep.tallies_reconcile()
    assert tally_counts(down) == record_counts(down) and record_counts(down)["total"] == 2
    assert get_redis().get(RECONCILED_UNTIL_KEY) is not None
