"""Shared fixtures. Each test starts with fresh rate-limit counters, and with empty Redis databases
when REDIS_URL is set (its own and every shard's of REDIS_SHARD_URLS: set it to run the suite on
several Redis servers, docs/redis-sharding.md); exports go to a temporary folder, tasks may run in-process."""

import pytest
from django.conf import settings

from polls import ratelimit
from polls.redis_client import redis_servers


@pytest.fixture(autouse=True)
def _empty_redis(monkeypatch):
    # Fresh in-process counters (the embedded mode's rate limits) for every test.
    monkeypatch.setattr(ratelimit, "_local_counters", ratelimit._LocalCounters())
    if settings.REDIS_URL:
        for server in redis_servers():
            server.flushdb()
    yield


@pytest.fixture
def export_root(settings, tmp_path):
    settings.EXPORT_ROOT = tmp_path / "exports"
    return settings.EXPORT_ROOT


@pytest.fixture
def embedded(monkeypatch):
    """Tasks run in-process, as under `make run`, even when the suite runs against Redis."""
    from polls import tasks

    monkeypatch.setitem(tasks.export_poll.app.conf, "task_always_eager", True)


@pytest.fixture
def chromium():
    """Headless Debian Chromium driven by Playwright (skipped without it, unless under CI)."""
    from crowdtick.tests import processes

    processes.require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=processes.CHROMIUM, headless=True, args=processes.CHROMIUM_ARGS
        )
        yield browser
        browser.close()
