#!/usr/bin/env python3
"""`make bench-reconcile`: what a reconcile pass costs with many polls, and with few of them changed.

    python bench/reconcile.py [--polls 10000] [--changed 100] [--rounds 5]

Seeds `--polls` polls (4 choices, 20 ballots each, all cast in the last ten minutes: every one is
"active"), builds their tallies, times a pass without a checkpoint (it looks at every active poll,
as every pass did before reconciliation followed the votes), then, `--rounds` times: votes once in
each of `--changed` polls through the vote service, waits out the commit slack, and times one pass
(`upkeep.tallies_reconcile`, what the beat runs every 10 s). Checks that every tally equals the
record at the end, times the per-minute counts' refresh over the same polls (its first pass and the
next minute's), and writes the "Reconciliation (make bench-reconcile)" section of docs/benchmarks.md.

Runs in a database of its own (`<DATABASE_URL's name>_reconcile_bench`, created and emptied) and
Redis database 3 unless RECONCILE_BENCH_REDIS_URL says otherwise (flushed at the start).
"""

import argparse
import os
import random
import statistics
import sys
import time
import urllib.parse
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SECTION = "## Reconciliation (make bench-reconcile)"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/crowdtick"


def bench_database_url() -> str:
    parts = urllib.parse.urlsplit(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    return urllib.parse.urlunsplit(parts._replace(path=f"{parts.path}_reconcile_bench"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=10_000)
    parser.add_argument("--changed", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-doc", action="store_true", help="print the figures, leave docs/benchmarks.md alone")
    options = parser.parse_args()

    from bench.run import write_section
    from crowdtick.database import ensure_database

    os.environ["DATABASE_URL"] = bench_database_url()
    os.environ["REDIS_URL"] = os.environ.get("RECONCILE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
    os.environ.setdefault("SECRET_KEY", "reconcile-bench-only")
    # One voter key votes in every changed poll of a round: the per-voter limit (in the vote service) would refuse it.
    os.environ.setdefault("RATELIMIT_ENABLE", "0")
    os.environ.setdefault("DB_WAIT_TIMEOUT", "0")  # seeding 200,000 ballots takes longer than a request may wait
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crowdtick.settings")
    ensure_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command

    from polls.redis_client import get_redis

    call_command("migrate", verbosity=0)
    get_redis().flushdb()
    figures = measure(options)
    section = render(options, figures)
    print(section)
    if not options.no_doc:
        write_section(section, heading=SECTION)


def measure(options) -> dict:
    from django.db import connection

    from polls import selectors, services, upkeep
    from polls.models import Poll
    from polls.redis_client import get_redis
    from polls.tallies.counts import tallies_from_record, tallies_get
    from polls.tallies.keys import RECONCILED_UNTIL_KEY
    from polls.tallies.reconcile import COMMIT_SLACK

    seed(options.polls)
    upkeep.tallies_reconcile()  # builds every tally
    get_redis().delete(RECONCILED_UNTIL_KEY)  # as if Redis had lost the checkpoint: look at every active poll
    started = time.perf_counter()
    upkeep.tallies_reconcile()
    catch_up = time.perf_counter() - started

    poll_ids = list(Poll.objects.values_list("id", flat=True))
    passes, looked_at = [], []
    for round_number in range(options.rounds):
        polls = selectors.polls_with_choices(poll_ids=random.sample(poll_ids, options.changed))
        for poll in polls:
            choice = random.choice(list(poll.choices.all()))
            services.vote_cast(poll=poll, choice_ids=[choice.id], voter_key=f"round{round_number}", ip_address=None)
        # The ballots of the last round fall out of the commit slack, as between two beat ticks.
        time.sleep(COMMIT_SLACK.total_seconds() + 1)
        checkpoint = get_redis().get(RECONCILED_UNTIL_KEY)
        looked_at.append(len(selectors.poll_ids_with_ballots_since(since=datetime.fromisoformat(checkpoint))))
        started = time.perf_counter()
        upkeep.tallies_reconcile()
        passes.append(time.perf_counter() - started)

    minutes_first, minutes_next, minutes_polls = refresh_vote_minutes_twice()

    every_poll = selectors.polls_with_choices(poll_ids=poll_ids)
    cached, record = tallies_get(every_poll), tallies_from_record(every_poll)
    exact = all(cached[poll.id].counts == record[poll.id].counts for poll in every_poll)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM polls_ballot")
        ballots = cursor.fetchone()[0]
    return {
        "catch_up": catch_up,
        "passes": passes,
        "looked_at": looked_at,
        "exact": exact,
        "ballots": ballots,
        "minutes_first": minutes_first,
        "minutes_next": minutes_next,
        "minutes_polls": minutes_polls,
    }


def refresh_vote_minutes_twice() -> tuple[float, float, int]:
    """The per-minute counts' refresh (`upkeep.vote_minutes_refresh`, every 15 s) over every poll voted
    in lately: its first pass (each poll's whole hour) and the next minute's; seconds each, and polls."""
    from datetime import timedelta

    from django.utils import timezone

    from polls import upkeep

    now = timezone.now()
    started = time.perf_counter()
    polls = upkeep.vote_minutes_refresh(now=now)
    first = time.perf_counter() - started
    started = time.perf_counter()
    upkeep.vote_minutes_refresh(now=now + timedelta(minutes=1))
    return first, time.perf_counter() - started, polls


def seed(polls: int) -> None:
    """`polls` polls of 4 choices, 20 ballots each cast in the last ten minutes, written by SQL in one go."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE polls_ballot, polls_choice, polls_poll RESTART IDENTITY CASCADE")
        cursor.execute(
            """
            INSERT INTO polls_poll (slug, question, description, max_choices, opens_at, closes_at, closed,
                                    results_visibility, dedupe, owner_token_hash, created_at)
            SELECT 'r' || i, 'Question ' || i, '', 1, NULL, NULL, false, 'always', 'browser', md5(i::text),
                   now() - interval '20 minutes'
            FROM generate_series(1, %s) AS i
            """,
            [polls],
        )
        cursor.execute(
            "INSERT INTO polls_choice (poll_id, text, position) "
            "SELECT p.id, 'Choice ' || c, c FROM polls_poll p, generate_series(0, 3) AS c"
        )
        cursor.execute(
            """
            INSERT INTO polls_ballot (poll_id, voter_key, ip_hash, ip_key, choice_mask, submitted_at)
            SELECT p.id, 'seed' || b, '', NULL, 1 << (b %% 4), now() - ((b * 29 + p.id %% 30) || ' seconds')::interval
            FROM polls_poll p, generate_series(1, 20) AS b
            ORDER BY 6
            """,
            [],
        )
        cursor.execute("ANALYZE polls_poll; ANALYZE polls_choice; ANALYZE polls_ballot")


def render(options, figures: dict) -> str:
    passes = figures["passes"]
    lines = [
        SECTION,
        "",
        f"Written by `make bench-reconcile` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"{options.polls:,} polls, every one with ballots in the last ten minutes ({figures['ballots']:,} ballots), "
        f"then {options.rounds} rounds of one vote in each of {options.changed} of them and one reconcile pass.",
        "",
        "| pass | polls looked at | seconds |",
        "| --- | ---: | ---: |",
        f"| every poll with a ballot in the last 15 minutes (no checkpoint: Redis lost it) | {options.polls:,} "
        f"| {figures['catch_up']:.2f} |",
        f"| after {options.changed} polls changed (median of {len(passes)}) | "
        f"{statistics.median(figures['looked_at']):,.0f} | {statistics.median(passes):.2f} |",
        "",
        f"Each pass: {', '.join(f'{seconds:.2f} s' for seconds in passes)}. "
        f"Every tally equal to the record afterwards: {'yes' if figures['exact'] else 'NO'}.",
        "",
        "Half a second of each pass is the wait for in-flight increments to reach Redis "
        "(`polls/tallies/reconcile.py`, `SETTLE_SECONDS`): it is paid once per batch of 500 polls, not per poll. "
        "The first row is what every pass cost when reconciliation looked at every active poll, as it did before.",
        "",
        f"The per-minute counts of the owner's chart (`upkeep.vote_minutes_refresh`, every 15 s) over the "
        f"{figures['minutes_polls']:,} polls voted in within its look-back: {figures['minutes_first']:.2f} s for the "
        f"first pass (each poll's whole hour), {figures['minutes_next']:.2f} s for the next minute's. It reads and "
        "writes them in batches of 1,000 polls (one `MGET`, one grouped count per distinct start, one pipeline), "
        "not poll by poll.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
