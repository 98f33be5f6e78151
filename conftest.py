"""Shared fixtures. Each test starts with fresh rate-limit counters, and with an empty Redis
database when REDIS_URL is set."""

import pytest
from django.conf import settings

from polls.ratelimit import rate_limits_reset
from polls.redis_client import get_redis


@pytest.fixture(autouse=True)
def _empty_redis():
    rate_limits_reset()  # the embedded mode's in-process counters
    if settings.REDIS_URL:
        get_redis().flushdb()
    yield
