"""Shared fixtures. With REDIS_URL set, each test starts with an empty Redis database."""

import pytest
from django.conf import settings

from polls.redis_client import get_redis


@pytest.fixture(autouse=True)
def _empty_redis():
    if settings.REDIS_URL:
        get_redis().flushdb()
    yield
