"""Creates the PostgreSQL database named in DATABASE_URL when it is missing.

`make stack`, `make bench`, `make bench-live` and `make loadtest` point at a database of their own; on a fresh
machine it does not exist yet, and Django cannot create it (it needs a connection to a database first). This
module imports no Django, so `scripts/stack` runs it before `migrate`:

    python -m crowdtick.database "$DATABASE_URL" "$REDIS_URL" [REDIS_URL of each shard ...]

It also checks that each Redis database belongs to this PostgreSQL database. Redis keys are named by
poll id (`tally:18`), so two sites sharing one Redis database would count into each other's
tallies: a load test on one database after another on a second, both on Redis database 0, did.
"""

import sys
import urllib.parse

import psycopg
import redis
from psycopg import sql

OWNER_KEY = "crowdtick:record"  # which PostgreSQL database this Redis database caches


def ensure_database(database_url: str) -> bool:
    """Creates the database if it does not exist; True when it did. Non-PostgreSQL URLs are left alone."""
    parts = urllib.parse.urlsplit(database_url)
    if not parts.scheme.startswith("postgres"):
        return False
    name = urllib.parse.unquote(parts.path.lstrip("/"))
    maintenance = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as connection:
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return False
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def claim_redis(redis_url: str, database_url: str) -> str | None:
    """Marks the Redis database as this record's cache; returns the other record it belongs to, if any."""
    parts = urllib.parse.urlsplit(database_url)
    record = f"{parts.hostname}:{parts.port or 5432}/{parts.path.lstrip('/')}"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.set(OWNER_KEY, record, nx=True)
    owner = client.get(OWNER_KEY)
    return owner if owner != record else None


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m crowdtick.database DATABASE_URL [REDIS_URL ...]")
    database_url, redis_urls = sys.argv[1], list(dict.fromkeys(sys.argv[2:]))
    if ensure_database(database_url):
        print(f"created the PostgreSQL database {urllib.parse.urlsplit(database_url).path.lstrip('/')!r}")
    for redis_url in redis_urls:
        try:
            other = claim_redis(redis_url, database_url)
        except redis.ConnectionError as error:  # the site runs without Redis too; say so and go on
            print(f"Redis {redis_url} does not answer ({error}); not checking whose tallies it holds")
            continue
        if other:
            sys.exit(
                f"Redis {redis_url} holds the tallies of another database ({other}): its keys would mix with this "
                "site's. Use another Redis database (e.g. another database number), or empty that one "
                "(redis-cli -n N flushdb)."
            )
