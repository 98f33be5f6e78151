"""Ballot stuffing made visible and reversible: the owner's audit of where ballots come from, the
flagged bursts, and voiding one, with every count (Redis tallies included) following exactly."""

import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from polls import ballot_audit, selectors, services
from polls.models import Ballot
from polls.redis_client import redis_for_poll
from polls.tallies import reconcile
from polls.tallies.counts import tallies_from_record, tally_from_record, tally_get, tally_record_ballot
from polls.tallies.keys import STALE_KEY, tally_key
from polls.tests.test_concurrency import in_threads, record_counts, redis_counts
from polls.vote_minutes import minute_counts_get

with_services = pytest.mark.skipif(
    not (connection.vendor == "postgresql" and settings.REDIS_URL), reason="needs PostgreSQL and Redis"
)
STUFFER = "203.0.113.7"


def make_poll():
    poll, _token = services.poll_create(question="Tea or coffee?", choices=["Tea", "Coffee", "Water"])
    return selectors.poll_get(slug=poll.slug)


def vote(poll, index, *, ip_address, choice=0):
    choice_id = list(poll.choices.all())[choice].id
    return services.vote_cast(
        poll=poll, choice_ids=[choice_id], voter_key=f"{ip_address}-{index}", ip_address=ip_address
    )


def stuff(poll, ballots, *, minute, ip_address=STUFFER, choice=1):
    """`ballots` votes from one network, each with a fresh voter key (a script dropping its cookie),
    all stamped within `minute`."""
    for index in range(ballots):
        vote(poll, index, ip_address=ip_address, choice=choice)
    network = services.client_address_hash(poll=poll, ip_address=ip_address)
    Ballot.objects.filter(poll=poll, ip_hash=network).update(submitted_at=minute + timedelta(seconds=20))
    return network


def honest_votes(poll, count, *, start=0):
    """One ballot per network, as a crowd on phones casts them."""
    for index in range(start, start + count):
        vote(poll, index, ip_address=f"10.{index // 250}.{index % 250}.1", choice=index % 3)


def a_minute_ago(minutes=5):
    return (timezone.now() - timedelta(minutes=minutes)).replace(second=0, microsecond=0)


def test_a_burst_from_one_network_is_flagged_and_a_crowd_is_not(db):
    poll = make_poll()
    honest_votes(poll, 30)
    minute = a_minute_ago()
    network = stuff(poll, ballot_audit.BURST_MIN_BALLOTS, minute=minute)
    stuff(poll, ballot_audit.BURST_MIN_BALLOTS - 1, minute=minute, ip_address="198.51.100.9")  # just below the bar

    audit = ballot_audit.ballot_audit(poll=poll)

    assert audit.total == 30 + 2 * ballot_audit.BURST_MIN_BALLOTS - 1
    assert audit.networks == 32
    assert audit.typical == 1
    assert audit.threshold == ballot_audit.BURST_MIN_BALLOTS
    assert [(burst.network, burst.minute, burst.ballots) for burst in audit.bursts] == [
        (network, minute, ballot_audit.BURST_MIN_BALLOTS)
    ]
    assert audit.top_networks[0].network == network
    assert audit.top_networks[0].percent == round(100 * 100 / 229)
    assert audit.busiest_minutes[0].minute == minute
    assert audit.busiest_minutes[0].ballots == 199


def test_a_poll_whose_voters_all_share_one_network_is_judged_by_its_own_pace(db):
    # A hall on one Wi-Fi: 150 ballots a minute, minute after minute, is this poll's normal.
    poll = make_poll()
    for minutes_ago in (3, 4, 5):
        stuff(poll, 150, minute=a_minute_ago(minutes_ago), ip_address=f"192.0.2.{minutes_ago}")
    audit = ballot_audit.ballot_audit(poll=poll)
    assert audit.typical == 150
    assert audit.threshold == 150 * ballot_audit.BURST_FACTOR
    assert audit.bursts == []


def test_voiding_a_burst_marks_its_ballots_and_leaves_them_out_of_every_count(transactional_db, export_root):
    poll = make_poll()
    tally_get(poll)  # the tally exists in Redis (when there is one), so ballots are counted there
    honest_votes(poll, 20)
    minute = a_minute_ago()
    network = stuff(poll, 120, minute=minute)
    outside_the_window = vote(poll, 999, ip_address=STUFFER).voter_key  # same network, later minute
    version_before = tally_get(poll).version
    prepared = services.poll_export_write(poll=poll)  # a CSV file prepared for the owner, void ballots in it

    assert services.ballots_void_burst(poll=poll, network=network, minute=minute) == 120

    voided = Ballot.objects.filter(poll=poll, voided_at__isnull=False)
    assert voided.count() == 120
    assert set(voided.values_list("void_reason", flat=True)) == {services.VOID_REASON_BURST}
    assert not Ballot.objects.get(poll=poll, voter_key=outside_the_window).voided_at
    assert Ballot.objects.filter(poll=poll).count() == 141  # still in the record
    results = selectors.poll_results(poll=poll)
    assert results.total == 21
    assert {c.text: c.votes for c in results.choices} == {"Tea": 8, "Coffee": 7, "Water": 6}
    assert results.version > version_before
    assert tally_from_record(poll).total == 21
    assert len(list(selectors.ballots_csv_rows(poll=poll))) == 1 + 21
    assert not prepared.exists()  # it counted the void ballots: the owner prepares a new one
    assert sum(votes for _, votes in minute_counts_get(poll_id=poll.id)) == 21
    audit = ballot_audit.ballot_audit(poll=poll)
    assert audit.bursts == [] and audit.total == 21
    assert [(group.ballots, group.reason) for group in audit.voided] == [(120, services.VOID_REASON_BURST)]
    with pytest.raises(services.AlreadyVoted):  # a voided voter still cannot vote again
        vote(poll, 0, ip_address=STUFFER)
    assert services.ballots_void_burst(poll=poll, network=network, minute=minute) == 0  # twice voids nothing more


@with_services
def test_voiding_is_refused_whole_while_redis_is_down(transactional_db, monkeypatch):
    poll = make_poll()
    minute = a_minute_ago()
    network = stuff(poll, 5, minute=minute)

    def unreachable(*, poll):
        raise services.redis.ConnectionError("down")

    monkeypatch.setattr(services, "tally_mark_stale", unreachable)
    with pytest.raises(services.VoidUnavailable):
        services.ballots_void_burst(poll=poll, network=network, minute=minute)
    assert not Ballot.objects.filter(poll=poll, voided_at__isnull=False).exists()


@with_services
def test_a_burst_voided_while_votes_keep_arriving_leaves_the_tally_exact_and_its_version_never_back(
    transactional_db,
):
    poll = make_poll()
    tally_get(poll)
    minute = a_minute_ago()
    network = stuff(poll, 300, minute=minute)
    versions, stop = [], threading.Event()

    def watch_the_version():
        while not stop.is_set():
            versions.append(int(redis_for_poll(poll).hget(tally_key(poll.id), "version")))

    def cast_or_void(i):
        if i == 200:
            return services.ballots_void_burst(poll=poll, network=network, minute=minute)
        return vote(poll, i, ip_address=f"10.9.{i // 250}.{i % 250}", choice=i % 3)

    watcher = threading.Thread(target=watch_the_version)
    watcher.start()
    try:
        outcomes = in_threads(cast_or_void, range(1500), threads=16)
    finally:
        stop.set()
        watcher.join()

    assert [outcome for outcome in outcomes if isinstance(outcome, Exception)] == []
    assert outcomes[200] == 300
    assert Ballot.objects.filter(poll=poll, voided_at__isnull=True).count() == 1499
    assert redis_counts(poll) == record_counts(poll)
    assert record_counts(poll)["total"] == 1499
    assert versions == sorted(versions), "the tally's version went back"
    assert int(redis_for_poll(poll).hget(tally_key(poll.id), "version")) >= versions[-1]
    assert not redis_for_poll(poll).sismember(STALE_KEY, poll.id)


@with_services
def test_a_voided_ballot_whose_count_reaches_redis_during_the_look_is_taken_off_exactly(transactional_db, monkeypatch):
    # The ballot committed, its increment was slow: it lands in Redis while the reconciler looks,
    # after the ballot was voided. Its window entry must be matched with it, void or not.
    poll = make_poll()
    tally_get(poll)
    honest_votes(poll, 3)
    tea = poll.choices.all()[0]
    late = Ballot.objects.create(poll=poll, voter_key="slow", ip_hash="x" * 64, choice_mask=tea.bit)
    Ballot.objects.filter(pk=late.pk).update(voided_at=timezone.now())

    def the_late_increment_lands(seconds):
        tally_record_ballot(poll=poll, ballot_id=late.pk, choice_ids=[tea.id])

    monkeypatch.setattr(reconcile.time, "sleep", the_late_increment_lands)
    reconcile.tally_reconcile_many(selectors.polls_with_choices(poll_ids=[poll.id]))

    assert redis_counts(poll) == record_counts(poll)
    assert record_counts(poll)["total"] == 3


def test_the_window_s_ballots_are_counted_void_or_not_and_a_rebuilt_version_is_not_behind(db):
    poll = make_poll()
    honest_votes(poll, 4)
    one = Ballot.objects.filter(poll=poll).first()
    Ballot.objects.filter(pk=one.pk).update(voided_at=timezone.now())

    assert tallies_from_record([poll], ballot_ids=[one.pk])[poll.id].total == 1
    rebuilt = tally_from_record(poll)
    assert rebuilt.total == 3
    # Counted once (version 4), taken off once (+1): a rebuild starts no lower than 5.
    assert rebuilt.version == 5


@pytest.mark.skipif(connection.vendor != "postgresql", reason="EXPLAIN plans of PostgreSQL")
def test_each_audit_query_reads_only_its_poll_s_ballots_through_an_index(settings, db):
    """100,000 ballots in the audited poll, 500,000 more in 2,000 others, analysed: every audit
    query reaches the poll's ballots through an index starting with the poll, never a scan of all."""
    settings.DB_WAIT_TIMEOUT = 0  # seeding takes longer than a request may wait on the database
    audited, others = make_poll(), [make_poll() for _ in range(2)]
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO polls_poll (slug, question, description, max_choices, closed, results_visibility,
                                       dedupe, owner_token_hash, created_at)
               SELECT 'x' || i, 'Q', '', 1, false, 'always', 'browser', md5(i::text), now()
               FROM generate_series(1, 2000) AS i"""
        )
        cursor.execute(
            """INSERT INTO polls_ballot (poll_id, voter_key, ip_hash, ip_key, choice_mask, submitted_at)
               SELECT p.id, md5(p.id || ':' || b), md5((b %% 40)::text), NULL, 1, now() - (b || ' seconds')::interval
               FROM polls_poll p, generate_series(1, 250) AS b WHERE p.id <> %s""",
            [audited.id],
        )
        cursor.execute(
            """INSERT INTO polls_ballot (poll_id, voter_key, ip_hash, ip_key, choice_mask, submitted_at)
               SELECT %s, 'v' || b, md5((b %% 500)::text), NULL, 1 << (b %% 3),
                      now() - ((b / 20) || ' seconds')::interval
               FROM generate_series(1, 100000) AS b""",
            [audited.id],
        )
        cursor.execute("ANALYZE polls_poll; ANALYZE polls_ballot")
    assert others  # the audited poll is not the only one
    queries = {
        "networks": lambda: ballot_audit.ballot_networks_top(poll=audited),
        "minutes": lambda: ballot_audit.ballot_minutes_busiest(poll=audited),
        "bursts": lambda: ballot_audit.ballot_bursts(poll=audited),
        "voids": lambda: ballot_audit.ballot_voids(poll=audited),
    }
    from django.test.utils import CaptureQueriesContext

    for name, read in queries.items():
        with CaptureQueriesContext(connection) as captured:
            read()
        (query,) = captured.captured_queries
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + query["sql"])
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "Seq Scan on polls_ballot" not in plan, f"{name}:\n{plan}"
        assert "ballot_poll_time_idx" in plan or "ballot_unique_voter" in plan, f"{name}:\n{plan}"
        assert f"poll_id = {audited.id}" in plan, f"{name}:\n{plan}"


def test_the_owner_page_of_a_poll_without_ballots_costs_one_query_and_one_with_only_void_ballots_lists_them(
    db, django_assert_num_queries
):
    new_poll = make_poll()
    with django_assert_num_queries(1):  # the EXISTS; no per-minute counts, no audit queries
        activity = selectors.poll_owner_activity(poll=new_poll)
    assert (activity.chart.total, activity.chart.poll_total, activity.audit.total) == (0, 0, 0)
    assert len(activity.chart.bars) == 60 and not any(bar.votes for bar in activity.chart.bars)
    assert activity.audit == ballot_audit.ballot_audit(poll=new_poll)  # what the four queries would have said

    voided_poll = make_poll()
    minute = a_minute_ago()
    network = stuff(voided_poll, ballot_audit.BURST_MIN_BALLOTS, minute=minute)
    services.ballots_void_burst(poll=voided_poll, network=network, minute=minute)
    activity = selectors.poll_owner_activity(poll=voided_poll)
    assert activity.audit.total == 0  # nothing counted, yet the owner sees what was voided
    assert [group.ballots for group in activity.audit.voided] == [ballot_audit.BURST_MIN_BALLOTS]
