"""Every query on the hot path uses an index, as PostgreSQL's EXPLAIN shows.

The tables hold enough rows (3,000 polls, 150,000 ballots) that the planner prefers an index
wherever one helps, as in production. `EXPLAIN_DOC=docs/explain.md pytest polls/tests/test_explain.py`
also writes the plans to that file.
"""

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Count, Q
from django.db.models.functions import TruncMinute
from django.utils import timezone

from polls.ballot_box import _INSERT_BALLOT
from polls.models import Ballot, Choice, Poll
from polls.selectors import _VOTER_PICK, polls_known_active_before

pytestmark = [
    pytest.mark.services,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="EXPLAIN plans of PostgreSQL"),
]
POLLS, BALLOTS_PER_POLL = 3000, 50


@pytest.fixture
def populated(db, settings):
    """Polls with choices and ballots, written by SQL in one go, then analysed."""
    # Seeding this many rows may take longer than a request may wait on the database (DB_WAIT_TIMEOUT).
    settings.DB_WAIT_TIMEOUT = 0
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO polls_poll (slug, question, description, max_choices, opens_at, closes_at, closed,
                                    results_visibility, dedupe, owner_token_hash, created_at)
            SELECT 'p' || i, 'Question ' || i, '', 1,
                   CASE WHEN i %% 7 = 0 THEN now() - (i || ' minutes')::interval END,
                   CASE WHEN i %% 3 = 0 THEN now() + ((i - 1500) || ' minutes')::interval END,
                   false, 'always', 'browser', md5(i::text), now()
            FROM generate_series(1, %s) AS i
            """,
            [POLLS],
        )
        cursor.execute(
            """
            INSERT INTO polls_choice (poll_id, text, position)
            SELECT p.id, 'Choice ' || c, c FROM polls_poll p, generate_series(0, 3) AS c
            """
        )
        cursor.execute(
            """
            INSERT INTO polls_ballot (poll_id, voter_key, ip_hash, ip_key, choice_mask, submitted_at)
            SELECT p.id, md5(p.id || ':' || b), '', NULL, 1 << (b %% 4),
                   now() - ((b * 37 + p.id %% 60) || ' minutes')::interval
            FROM polls_poll p, generate_series(1, %s) AS b
            """,
            [BALLOTS_PER_POLL],
        )
        cursor.execute("ANALYZE polls_poll; ANALYZE polls_choice; ANALYZE polls_ballot")
    return Poll.objects.get(slug="p1500")


def hot_path_plans(poll: Poll) -> dict[str, str]:
    now = timezone.now()
    voter = Ballot.objects.filter(poll=poll).values_list("voter_key", flat=True).first()
    with connection.cursor() as cursor:
        params = [poll.id, "new-voter", "", None, 1, "", now]
        cursor.execute("EXPLAIN " + _INSERT_BALLOT, params)
        insert_plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("EXPLAIN " + _VOTER_PICK, [poll.id, voter])
        has_voted_plan = "\n".join(row[0] for row in cursor.fetchall())
    window = Q(closes_at__gt=now - timedelta(seconds=1), closes_at__lte=now) | Q(
        opens_at__gt=now - timedelta(seconds=1), opens_at__lte=now
    )
    return {
        "the poll of a URL (every vote and page)": Poll.objects.filter(slug=poll.slug).explain(),
        "its choices (once per process, then cached)": Choice.objects.filter(poll_id=poll.id).explain(),
        "the vote: INSERT … ON CONFLICT DO NOTHING": insert_plan,
        "has this browser voted, and what it picked": has_voted_plan,
        "has this browser voted (poll without dedupe: 'voter~…' keys)": Ballot.objects.filter(
            Q(voter_key=voter) | Q(voter_key__startswith=f"{voter}~"), poll=poll
        ).explain(),
        "polls whose deadline or opening passed this second (broadcaster, beat)": Poll.objects.filter(window).explain(),
        "polls that took a ballot lately (reconciler every 10 s, per-minute counts)": Ballot.objects.filter(
            submitted_at__gte=now - timedelta(seconds=30)
        )
        .values_list("poll_id", flat=True)
        .distinct()
        .explain(),
        "polls idle the longest, not archived, each with its last ballot (archiving task)": (
            polls_known_active_before(now - timedelta(days=30))[:500].explain()
        ),
        "votes per minute of a poll (owner's chart)": Ballot.objects.filter(
            poll=poll, submitted_at__gte=now - timedelta(minutes=60)
        )
        .annotate(minute=TruncMinute("submitted_at"))
        .values("minute")
        .annotate(n=Count("id"))
        .explain(),
    }


def test_every_hot_path_query_uses_an_index(populated):
    plans = hot_path_plans(populated)
    expected_index = {
        "the poll of a URL (every vote and page)": "polls_poll_slug",
        "its choices (once per process, then cached)": "polls_choice_poll_id",
        # No conflict target: every unique index (ballot_unique_voter, ballot_unique_address) arbitrates.
        "the vote: INSERT … ON CONFLICT DO NOTHING": "Conflict Resolution: NOTHING",
        "has this browser voted, and what it picked": "ballot_unique_voter",
        "has this browser voted (poll without dedupe: 'voter~…' keys)": "ballot_unique_voter",
        "polls whose deadline or opening passed this second (broadcaster, beat)": "poll_opens_at_idx",
        "polls that took a ballot lately (reconciler every 10 s, per-minute counts)": "ballot_time_brin",
        "votes per minute of a poll (owner's chart)": "ballot_poll_time_idx",
        "polls idle the longest, not archived, each with its last ballot (archiving task)": (
            "poll_unarchived_active_idx"
        ),
    }
    for name, plan in plans.items():
        assert expected_index[name] in plan, f"{name}:\n{plan}"
        if "INSERT" not in name:
            assert "Seq Scan" not in plan, f"{name}:\n{plan}"
    assert "poll_closes_at_idx" in plans["polls whose deadline or opening passed this second (broadcaster, beat)"]
    # Each poll's last ballot: one backward probe of (poll, submitted_at), not a scan of its ballots.
    assert (
        "Index Only Scan Backward using ballot_poll_time_idx"
        in plans["polls idle the longest, not archived, each with its last ballot (archiving task)"]
    )
    prefix_plan = plans["has this browser voted (poll without dedupe: 'voter~…' keys)"]
    assert "~>=~" in prefix_plan  # the LIKE prefix became an index range, not a filter over the poll's ballots

    if os.environ.get("EXPLAIN_DOC"):
        _write_doc(Path(os.environ["EXPLAIN_DOC"]), plans)


def _write_doc(path: Path, plans: dict[str, str]) -> None:
    lines = [
        "# Hot-path queries and their plans",
        "",
        "Written by `EXPLAIN_DOC=docs/explain.md pytest polls/tests/test_explain.py` (PostgreSQL, with",
        f"{POLLS:,} polls and {POLLS * BALLOTS_PER_POLL:,} ballots analysed); the same test asserts each plan uses",
        "its index, so CI notices when a change loses one.",
        "",
    ]
    lines += [
        "Which polls took a ballot lately is asked of the record (the BRIN index on the ballots' time)",
        "rather than of a Redis set on purpose: votes cast while Redis was down are in the record only,",
        "and their polls' tallies must still be repaired.",
        "",
    ]
    for name, plan in plans.items():
        lines += [f"## {name}", "", "```", plan, "```", ""]
    path.write_text("\n".join(lines))
