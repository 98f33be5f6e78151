"""Which Redis server holds what: the home server, and the shard of each poll (docs/redis-sharding.md).
Two real shards at work are in realtime/tests/test_redis_shards.py."""

from collections import Counter
from types import SimpleNamespace

import pytest

from polls.models import new_slug
from polls.redis_client import by_shard, get_redis, redis_for_poll, redis_servers, redis_shards, shard_index


def test_a_polls_shard_is_fixed_by_its_slug_across_processes_and_releases():
    # Pinned: a release that changed these would move every poll to another server (a reshuffle).
    assert [shard_index(slug, 2) for slug in ("aB3dE9xQ", "poll", "kiosk-7")] == [0, 1, 0]
    assert [shard_index(slug, 4) for slug in ("aB3dE9xQ", "poll", "kiosk-7")] == [2, 1, 0]
    assert shard_index("anything", 1) == 0


def test_random_slugs_spread_evenly_over_the_shards():
    counts = Counter(shard_index(new_slug(), 4) for _ in range(4000))
    assert sorted(counts) == [0, 1, 2, 3]
    assert all(800 <= count <= 1200 for count in counts.values()), counts


def test_with_one_shard_every_poll_is_on_the_home_server(settings):
    settings.REDIS_URL = "redis://127.0.0.1:6379/9"
    settings.REDIS_SHARD_URLS = [settings.REDIS_URL]
    poll = SimpleNamespace(id=1, slug=new_slug())
    assert redis_for_poll(poll) is get_redis()
    assert redis_shards() == redis_servers() == [get_redis()]


def test_with_two_shards_polls_go_to_the_one_their_slug_names_and_the_home_server_is_listed_once(settings):
    settings.REDIS_URL = "redis://127.0.0.1:6379/9"
    settings.REDIS_SHARD_URLS = [settings.REDIS_URL, "redis://127.0.0.1:6380/9"]
    polls = [SimpleNamespace(id=n, slug=slug) for n, slug in enumerate(["aB3dE9xQ", "poll", "kiosk-7"])]
    home, second = redis_shards()
    assert home is get_redis() and second is not home
    assert [redis_for_poll(poll) for poll in polls] == [home, second, home]
    assert by_shard(polls) == {home: [polls[0], polls[2]], second: [polls[1]]}
    assert redis_servers() == [home, second]


@pytest.mark.parametrize("shards", [[], ["redis://127.0.0.1:6380/9"]])
def test_embedded_mode_has_no_redis_whatever_the_shards_say(settings, shards):
    settings.REDIS_URL = ""
    settings.REDIS_SHARD_URLS = shards
    assert redis_for_poll(SimpleNamespace(id=1, slug="poll")) is None
    assert redis_shards() == redis_servers() == []
    assert by_shard([SimpleNamespace(id=1, slug="poll")]) == {}
