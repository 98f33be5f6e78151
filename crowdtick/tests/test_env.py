"""Settings read from the environment: the Redis servers (crowdtick/env.py, docs/redis-sharding.md)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from crowdtick.env import env_redis_shards

ROOT = Path(__file__).resolve().parents[2]
HOME = "redis://10.0.0.1:6379/0"


def test_without_shards_the_home_server_is_the_only_shard(monkeypatch):
    monkeypatch.delenv("REDIS_SHARD_URLS", raising=False)
    assert env_redis_shards("REDIS_SHARD_URLS", HOME) == [HOME]
    assert env_redis_shards("REDIS_SHARD_URLS", "") == []


def test_shards_are_a_comma_separated_list_in_order(monkeypatch):
    monkeypatch.setenv("REDIS_SHARD_URLS", f" {HOME}, redis://10.0.0.2:6379/0 ,unix:///run/redis.sock?db=1")
    assert env_redis_shards("REDIS_SHARD_URLS", HOME) == [
        HOME,
        "redis://10.0.0.2:6379/0",
        "unix:///run/redis.sock?db=1",
    ]


@pytest.mark.parametrize(
    ("shards", "home", "message"),
    [
        ("redis://10.0.0.2:6379/0", "", "needs REDIS_URL"),
        ("10.0.0.2:6379", HOME, "must list Redis URLs"),
        (f"{HOME},redis://10.0.0.2:6379/0,{HOME}", HOME, "lists a server twice"),
    ],
)
def test_a_bad_shard_list_stops_the_process_at_start_up(monkeypatch, shards, home, message):
    monkeypatch.setenv("REDIS_SHARD_URLS", shards)
    with pytest.raises(ImproperlyConfigured, match=message):
        env_redis_shards("REDIS_SHARD_URLS", home)


def test_the_channel_layer_spreads_over_every_shard():
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "PYTEST_"))}
    env |= {"SECRET_KEY": "x" * 50, "REDIS_URL": HOME, "REDIS_SHARD_URLS": f"{HOME},redis://10.0.0.2:6379/0"}
    script = (
        "import django, json; django.setup(); from django.conf import settings;"
        "layer = settings.CHANNEL_LAYERS['default'];"
        "print(json.dumps([layer['BACKEND'], [host['address'] for host in layer['CONFIG']['hosts']],"
        " settings.CELERY_BROKER_URL]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env | {"DJANGO_SETTINGS_MODULE": "crowdtick.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    backend, hosts, broker = json.loads(done.stdout.strip().splitlines()[-1])
    assert backend == "channels_redis.pubsub.RedisPubSubChannelLayer"
    assert hosts == [HOME, "redis://10.0.0.2:6379/0"]
    assert broker == HOME  # the broker stays on the home server
