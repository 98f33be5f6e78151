"""Readiness: can this process reach what it is configured to use?"""

from django.conf import settings
from django.db import connection

from polls.redis_client import redis_servers


def readiness() -> dict[str, bool]:
    """Each configured service and whether it answered: the database always; Redis and the
    Celery broker when `REDIS_URL` is set."""
    checks = {"database": _database_answers()}
    if settings.REDIS_URL:
        checks["redis"] = _redis_answers()
        checks["broker"] = _broker_answers()
    return checks


def _database_answers() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:  # whatever the driver calls it, the answer is "not ready"
        return False


def _redis_answers() -> bool:
    """The home server and every shard (`REDIS_SHARD_URLS`): a poll on a silent shard gets no pushes."""
    try:
        return all(client.ping() for client in redis_servers())
    except Exception:
        return False


def _broker_answers() -> bool:
    from crowdtick.celery import app

    try:
        with app.connection_for_write() as broker:
            broker.ensure_connection(max_retries=1, timeout=1)
        return True
    except Exception:
        return False
