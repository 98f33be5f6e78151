"""Creates the PostgreSQL database named in DATABASE_URL when it is missing.

`make stack`, `make bench`, `make bench-live` and `make loadtest` point at a database of their own; on a fresh
machine it does not exist yet, and Django cannot create it (it needs a connection to a database first). This
module imports no Django, so `scripts/stack` runs it before `migrate`:

    python -m crowdtick.database "$DATABASE_URL"
"""

import sys
import urllib.parse

import psycopg
from psycopg import sql


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


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m crowdtick.database DATABASE_URL")
    if ensure_database(sys.argv[1]):
        print(f"created the PostgreSQL database {urllib.parse.urlsplit(sys.argv[1]).path.lstrip('/')!r}")
