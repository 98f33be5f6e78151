"""Join codes: the 6 digits a phone types to reach an event or a poll, one code space for both.

A code is in use by an event not ended or a poll not archived (and not an event's question: those
are reached by their event's code). A new one is drawn at random among the million and checked
against both tables while holding a transaction-level advisory lock, so two creations never take
the same code, whichever tables they write; each table's partial unique index guards it too.
"""

import secrets

from django.db import connection

from polls.models import EVENT_CODE_DIGITS, Event, Poll

# Attempts at a free code: with a million codes and a few thousand in use, a clash is rare and
# several in a row rarer than a failing disk.
CLAIM_ATTEMPTS = 8
# pg_advisory_xact_lock's key for code claims: any constant this project uses for nothing else.
_LOCK_KEY = 7_461_001

_event_table, _poll_table = Event._meta.db_table, Poll._meta.db_table
_IN_USE = (
    f"SELECT EXISTS (SELECT 1 FROM {_event_table} WHERE code = %s AND ended_at IS NULL)"
    f" OR EXISTS (SELECT 1 FROM {_poll_table} WHERE code = %s AND archived_at IS NULL)"
)


def new_code() -> str:
    return f"{secrets.randbelow(10**EVENT_CODE_DIGITS):0{EVENT_CODE_DIGITS}d}"


def join_code_claim() -> str:
    """A code no running event and no open poll uses; runs inside the caller's transaction, whose
    commit (or rollback) ends the claim's lock. Raises RuntimeError if every attempt clashed."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        for _ in range(CLAIM_ATTEMPTS):
            code = new_code()
            cursor.execute(_IN_USE, [code, code])
            if not cursor.fetchone()[0]:
                return code
    raise RuntimeError("No free join code after several attempts: the code space is nearly full.")


def join_target(*, code: str) -> Event | Poll | None:
    """What `code` joins: a running event, else an open poll, else the latest event that ended under
    it (its phones say it ended); None when nothing does."""
    code = "".join((code or "").split())
    if not (code.isdigit() and len(code) == EVENT_CODE_DIGITS):
        return None
    running = Event.objects.filter(code=code, ended_at=None).first()
    if running is not None:
        return running
    poll = Poll.objects.filter(code=code, archived_at=None).only("slug").first()
    if poll is not None:
        return poll
    return Event.objects.filter(code=code).order_by("-ended_at").first()
