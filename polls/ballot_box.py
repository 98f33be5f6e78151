"""Puts ballots in the record: one statement per vote, no hot row, nothing counted twice."""

from datetime import datetime

from django.db import connection

from polls.models import Ballot

_table = Ballot._meta.db_table

# One autocommitted statement whatever the poll's size: the unique constraints on
# (poll, voter_key) and (poll, ip_key) turn a repeat into "no row", never an error or a
# second ballot. PostgreSQL and SQLite (3.35+) both speak this dialect.
_INSERT_BALLOT = f"""
INSERT INTO {_table} (poll_id, voter_key, ip_hash, ip_key, choice_mask, submitted_at)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING
RETURNING id
"""


def ballot_insert(
    *, poll_id: int, voter_key: str, ip_hash: str, ip_key: str | None, choice_mask: int, submitted_at: datetime
) -> int | None:
    """Inserts the ballot; returns its id, or None when this voter (or address) already voted."""
    with connection.cursor() as cursor:
        params = [
            poll_id,
            voter_key,
            ip_hash,
            ip_key,
            choice_mask,
            connection.ops.adapt_datetimefield_value(submitted_at),
        ]
        cursor.execute(_INSERT_BALLOT, params)
        row = cursor.fetchone()
    return row[0] if row else None
