"""The Celery tasks, run as plain functions: each calls a service that must be idempotent."""

import csv
import io
import os
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from polls import exports, jobs, selectors, services, tasks, upkeep
from polls.exports import poll_export_file
from polls.models import Ballot
from polls.redis_client import get_redis, redis_for_poll
from polls.tallies import reconcile
from polls.tallies.changes import tally_pop_changed
from polls.tallies.counts import tallies_from_record, tally_from_record, tally_get, tally_record_ballot
from polls.tallies.keys import CHANGED_KEY, RECONCILE_LOCK_KEY, STALE_KEY, tally_key, window_key
from polls.vote_minutes import minute_counts_get

pytestmark = pytest.mark.django_db
needs_redis = pytest.mark.skipif(
    not settings.REDIS_URL, reason="tallies are cached in Redis only when REDIS_URL is set"
)


def make_poll(**kwargs):
    poll, _token = services.poll_create(question="Best fruit?", choices=["Apple", "Pear", "Plum"], **kwargs)
    return selectors.poll_get(slug=poll.slug)


def vote(poll, voter, choice_index=0):
    choice = poll.choices.all()[choice_index]
    services.vote_cast(poll=poll, choice_ids=[choice.id], voter_key=voter, ip_address=None)


def test_the_record_counts_many_polls_in_one_query(django_assert_num_queries):
    fruit = make_poll(max_choices=2)
    colours, _ = services.poll_create(question="Colour?", choices=[f"c{i}" for i in range(12)])
    colours = selectors.poll_get(slug=colours.slug)
    empty = make_poll()
    apple, pear, plum = fruit.choices.all()
    services.vote_cast(poll=fruit, choice_ids=[apple.id, plum.id], voter_key="a", ip_address=None)
    services.vote_cast(poll=fruit, choice_ids=[plum.id], voter_key="b", ip_address=None)
    last = colours.choices.all()[11]
    for voter in ("a", "b", "c"):
        services.vote_cast(poll=colours, choice_ids=[last.id], voter_key=voter, ip_address=None)

    with django_assert_num_queries(1):
        tallies = tallies_from_record([fruit, colours, empty])

    assert tallies[fruit.id].counts == {apple.id: 1, pear.id: 0, plum.id: 2}
    assert tallies[fruit.id].total == tallies[fruit.id].version == 2
    assert tallies[colours.id].counts == {c.id: (3 if c == last else 0) for c in colours.choices.all()}
    assert tallies[empty.id].total == 0 and set(tallies[empty.id].counts.values()) == {0}
    assert tallies[colours.id] == tally_from_record(colours)


@needs_redis
def test_reconcile_repairs_a_drifted_tally_and_moves_its_version_forward():
    poll = make_poll()
    for i in range(3):
        vote(poll, f"v{i}")
    tally_get(poll)
    apple = poll.choices.all()[0]
    redis = redis_for_poll(poll)
    redis.hincrby(tally_key(poll.id), f"c:{apple.id}", 5)  # drift: five selections nobody cast
    redis.hincrby(tally_key(poll.id), "version", 1)
    drifted_version = int(redis.hget(tally_key(poll.id), "version"))

    assert tasks.reconcile_tallies() == 1

    repaired = tally_get(poll)
    assert (
        repaired.counts == tally_from_record(poll).counts == {apple.id: 3, **{c.id: 0 for c in poll.choices.all()[1:]}}
    )
    assert repaired.total == 3
    assert repaired.version > drifted_version
    assert tasks.reconcile_tallies() == 0  # nothing left to repair: running again changes nothing
    assert tally_get(poll).version == repaired.version


@needs_redis
def test_a_ballot_counted_while_the_reconciler_looks_is_not_counted_twice(monkeypatch):
    poll = make_poll()
    tally_get(poll)
    apple = poll.choices.all()[0]
    vote(poll, "in-flight")  # committed; its increment (run after the commit) has not reached Redis yet

    ballot = Ballot.objects.get(poll=poll, voter_key="in-flight")

    def the_increment_lands_meanwhile(seconds):
        tally_record_ballot(poll=poll, ballot_id=ballot.id, choice_ids=[apple.id])

    monkeypatch.setattr(reconcile.time, "sleep", the_increment_lands_meanwhile)

    assert tasks.reconcile_tallies() == 0
    assert tally_get(poll).counts == tally_from_record(poll).counts
    assert tally_get(poll).total == 1


@needs_redis
def test_a_look_that_redis_lost_midway_repairs_nothing_and_the_next_run_does(monkeypatch):
    poll = make_poll()
    tally_get(poll)
    vote(poll, "lost")  # in the record; its increment never reached Redis
    redis = redis_for_poll(poll)

    def redis_restarts_from_a_save_older_than_the_window(seconds):
        redis.delete(window_key(poll.id))

    monkeypatch.setattr(reconcile.time, "sleep", redis_restarts_from_a_save_older_than_the_window)
    assert tasks.reconcile_tallies() == 0
    assert tally_get(poll).total == 0
    assert redis.sismember(STALE_KEY, poll.id)  # looked at again by the next run, even once the poll is quiet

    monkeypatch.undo()
    assert tasks.reconcile_tallies() == 1
    assert tally_get(poll).total == 1
    assert not redis.sismember(STALE_KEY, poll.id)


@needs_redis
def test_a_tally_replaced_during_the_look_is_not_corrected_by_it(monkeypatch):
    poll = make_poll()
    tally_get(poll)
    vote(poll, "lost")

    def a_rebuild_replaces_the_tally(seconds):
        redis_for_poll(poll).hincrby(tally_key(poll.id), "version", 1)  # a change the window did not see

    monkeypatch.setattr(reconcile.time, "sleep", a_rebuild_replaces_the_tally)
    assert tasks.reconcile_tallies() == 0
    assert tally_get(poll).total == 0


@needs_redis
def test_reconcile_runs_one_at_a_time():
    poll = make_poll()
    tally_get(poll)
    vote(poll, "lost")
    running = get_redis().lock(RECONCILE_LOCK_KEY, timeout=60)
    assert running.acquire(blocking=False)

    assert tasks.reconcile_tallies() == 0  # another run is looking: this one leaves the tallies alone
    assert tally_get(poll).total == 0

    running.release()
    assert tasks.reconcile_tallies() == 1
    assert tally_get(poll).total == 1


@needs_redis
def test_reconcile_rebuilds_a_tally_lost_with_redis_and_clears_the_stale_mark():
    poll = make_poll()
    tally_get(poll)
    vote(poll, "before")
    redis_for_poll(poll).delete(tally_key(poll.id))
    vote(poll, "after")  # finds no tally to increment: marks the poll stale instead
    assert redis_for_poll(poll).sismember(STALE_KEY, poll.id)

    tasks.reconcile_tallies()

    assert redis_for_poll(poll).hget(tally_key(poll.id), "total") == "2"
    assert not redis_for_poll(poll).sismember(STALE_KEY, poll.id)


@needs_redis
def test_reconcile_forgets_stale_marks_of_deleted_polls():
    poll = make_poll()
    poll_id = poll.id
    redis_for_poll(poll).sadd(STALE_KEY, poll_id)
    poll.delete()
    tasks.reconcile_tallies()
    assert not redis_for_poll(poll).sismember(STALE_KEY, poll_id)


def test_a_poll_whose_deadline_passed_is_announced():
    poll = make_poll(closes_at=timezone.now() + timedelta(hours=1))
    tally_pop_changed()
    type(poll).objects.filter(id=poll.id).update(closes_at=timezone.now() - timedelta(seconds=1))

    assert tasks.announce_deadlines() == 1
    assert poll.id in tally_pop_changed()


@needs_redis
def test_a_deadline_is_announced_once_across_beat_ticks():
    poll = make_poll(closes_at=timezone.now() + timedelta(hours=1))
    type(poll).objects.filter(id=poll.id).update(closes_at=timezone.now() - timedelta(seconds=1))
    assert tasks.announce_deadlines() == 1
    redis_for_poll(poll).delete(CHANGED_KEY)
    assert tasks.announce_deadlines() == 0
    assert not redis_for_poll(poll).sismember(CHANGED_KEY, poll.id)


def test_the_export_file_holds_every_ballot_without_voter_keys(tmp_path, settings):
    settings.EXPORT_ROOT = tmp_path
    poll = make_poll()
    vote(poll, "secret-voter-1", 0)
    vote(poll, "secret-voter-2", 2)
    assert poll_export_file(poll=poll) is None

    path = tasks.export_poll(poll.id)

    text = (tmp_path / f"{poll.slug}.csv").read_text()
    assert path == str(poll_export_file(poll=poll))
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["submitted_at", "choices"]
    assert sorted(row[1] for row in rows[1:]) == ["Apple", "Plum"]
    assert "secret-voter" not in text
    assert list(tmp_path.glob("*.part")) == []  # written whole, then renamed

    vote(poll, "secret-voter-3", 1)
    tasks.export_poll(poll.id)
    assert len((tmp_path / f"{poll.slug}.csv").read_text().splitlines()) == 4


def test_deleting_a_poll_deletes_its_export_file(tmp_path, settings):
    settings.EXPORT_ROOT = tmp_path
    poll = make_poll()
    tasks.export_poll(poll.id)
    services.poll_delete(poll=poll)
    assert list(tmp_path.iterdir()) == []
    assert tasks.export_poll(poll.id) is None


def test_an_export_is_started_once_and_its_file_is_dated_by_when_its_ballots_were_read(tmp_path, settings, monkeypatch):
    settings.EXPORT_ROOT = tmp_path
    queued = []
    monkeypatch.setattr(tasks.export_poll, "delay", queued.append)
    poll = make_poll()
    vote(poll, "voter-1")
    assert jobs.poll_export_start(poll=poll) is True
    assert jobs.poll_export_start(poll=poll) is False  # pending
    assert selectors.poll_export_status(poll=poll).pending

    before = timezone.now()
    tasks.export_poll(queued[0])
    status = selectors.poll_export_status(poll=poll)
    assert not status.pending and status.path is not None
    assert before - timedelta(seconds=1) <= status.written_at <= timezone.now()
    assert jobs.poll_export_start(poll=poll) is False  # fresh
    assert queued == [poll.id]


def test_an_export_whose_worker_died_does_not_block_the_next_one_for_ever(tmp_path, settings, monkeypatch):
    settings.EXPORT_ROOT = tmp_path
    queued = []
    monkeypatch.setattr(tasks.export_poll, "delay", queued.append)
    poll = make_poll()
    jobs.poll_export_start(poll=poll)
    long_ago = (timezone.now() - exports.PENDING_STALE_AFTER - timedelta(seconds=1)).timestamp()
    os.utime(tmp_path / f"{poll.slug}.pending", (long_ago, long_ago))
    assert not selectors.poll_export_status(poll=poll).pending
    assert jobs.poll_export_start(poll=poll) is True
    assert queued == [poll.id, poll.id]


def vote_at(poll, voter, moment):
    """A vote through the service (so the poll counts as active), stamped at `moment`."""
    vote(poll, voter)
    Ballot.objects.filter(poll=poll, voter_key=voter).update(submitted_at=moment)


@pytest.mark.django_db(transaction=True)
def test_votes_per_minute_count_each_minute_of_the_last_hour():
    poll = make_poll()
    now = timezone.now().replace(second=30, microsecond=0)
    for seconds_ago, voter in [(60 * 5, "a"), (60 * 5 + 10, "b"), (60 * 2, "c"), (5, "d"), (60 * 90, "old")]:
        vote_at(poll, voter, now - timedelta(seconds=seconds_ago))

    tasks.refresh_vote_minutes()
    chart = minute_counts_get(poll_id=poll.id, now=now)

    assert len(chart) == 60
    by_minute = dict(chart)
    minute = now.replace(second=0)
    assert by_minute[minute - timedelta(minutes=5)] == 2
    assert by_minute[minute - timedelta(minutes=2)] == 1
    assert by_minute[minute] == 1  # the running minute, counted from the record
    assert sum(by_minute.values()) == 4  # the ballot of 90 minutes ago is off the chart


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_the_refresh_task_stores_each_finished_minute_exactly_once_however_often_it_runs():
    poll = make_poll()
    now = timezone.now()
    finished_minute = now.replace(second=0, microsecond=0) - timedelta(minutes=2)  # a finished minute
    for i in range(3):
        vote_at(poll, f"v{i}", finished_minute + timedelta(seconds=i))

    assert tasks.refresh_vote_minutes() == 1
    tasks.refresh_vote_minutes()
    stored = get_redis().hgetall(f"minutes:{poll.id}")
    assert stored == {str(int(finished_minute.timestamp())): "3"}

    vote_at(poll, "late", now)
    by_minute = dict(selectors.poll_votes_per_minute(poll=poll))
    assert by_minute[finished_minute] == 3
    assert by_minute[now.replace(second=0, microsecond=0)] == 1


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_the_refresh_task_touches_no_poll_without_recent_votes():
    quiet, busy = make_poll(), make_poll()
    vote_at(quiet, "long-ago", timezone.now() - timedelta(minutes=30))
    vote_at(busy, "just-now", timezone.now())

    assert tasks.refresh_vote_minutes() == 1
    assert get_redis().exists(f"minutes:{busy.id}:until")
    assert not get_redis().exists(f"minutes:{quiet.id}:until")
    # The quiet poll's chart is still exact: its reader counts it from the record.
    assert sum(votes for _, votes in selectors.poll_votes_per_minute(poll=quiet)) == 1


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_the_refresh_task_stores_many_polls_minutes_in_as_many_queries_as_one_poll_s(django_assert_max_num_queries):
    finished_minute = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=2)
    polls = [make_poll() for _ in range(25)]
    for index, poll in enumerate(polls):
        for voter in range(index % 3 + 1):
            vote_at(poll, f"p{index}-v{voter}", finished_minute + timedelta(seconds=voter))
    get_redis().set(f"minutes:{polls[0].id}:until", int((finished_minute - timedelta(minutes=5)).timestamp()))

    # Which polls took ballots (1), then one grouped query per distinct start: polls seen for the first
    # time count the last hour (1), the one stored until 7 minutes ago counts from there (1).
    with django_assert_max_num_queries(3):
        assert tasks.refresh_vote_minutes() == 25

    minute = str(int(finished_minute.timestamp()))
    assert [get_redis().hgetall(f"minutes:{poll.id}") for poll in polls] == [
        {minute: str(index % 3 + 1)} for index in range(25)
    ]
    with django_assert_max_num_queries(3):  # again: nothing new to store, nothing counted twice
        tasks.refresh_vote_minutes()
    assert get_redis().hgetall(f"minutes:{polls[2].id}") == {minute: "3"}


# --- which polls a reconcile run looks at, and what a failure costs ------------------------------


@needs_redis
def test_a_tally_that_appears_while_the_reconciler_looks_does_not_crash_the_run(monkeypatch):
    poll = make_poll()
    vote(poll, "first")  # no tally yet: its increment marked the poll stale instead

    def a_reader_builds_the_tally_meanwhile(seconds):
        tally_get(poll)

    monkeypatch.setattr(reconcile.time, "sleep", a_reader_builds_the_tally_meanwhile)
    tasks.reconcile_tallies()  # used to raise KeyError: 'version'
    monkeypatch.undo()

    tasks.reconcile_tallies()
    assert tally_get(poll).counts == tally_from_record(poll).counts
    assert not redis_for_poll(poll).sismember(STALE_KEY, poll.id)


@needs_redis
def test_a_tally_that_disappears_while_the_reconciler_looks_is_rebuilt_by_the_next_run(monkeypatch):
    poll = make_poll()
    tally_get(poll)
    vote(poll, "counted")

    def redis_loses_the_tally_meanwhile(seconds):
        redis_for_poll(poll).delete(tally_key(poll.id))

    monkeypatch.setattr(reconcile.time, "sleep", redis_loses_the_tally_meanwhile)
    assert tasks.reconcile_tallies() == 0
    assert redis_for_poll(poll).sismember(STALE_KEY, poll.id)
    monkeypatch.undo()

    tasks.reconcile_tallies()
    assert redis_for_poll(poll).hget(tally_key(poll.id), "total") == "1"


@needs_redis
def test_a_poll_whose_repair_fails_is_marked_stale_and_the_others_are_still_repaired(monkeypatch):
    broken, fine = make_poll(), make_poll()
    for poll in (broken, fine):
        tally_get(poll)
        redis_for_poll(poll).hincrby(tally_key(poll.id), "total", 7)  # drift on both
        vote(poll, "v")
    repair_one = reconcile._repair_one

    def fails_for_one_poll(client, poll, *args):
        if poll.id == broken.id:
            raise RuntimeError("a bug in one poll's repair")
        return repair_one(client, poll, *args)

    monkeypatch.setattr(reconcile, "_repair_one", fails_for_one_poll)
    assert tasks.reconcile_tallies() == 1
    assert tally_get(fine).total == 1
    assert redis_for_poll(broken).sismember(STALE_KEY, broken.id)

    monkeypatch.undo()
    assert tasks.reconcile_tallies() == 1  # the stale mark brings it back, though it took no new vote
    assert tally_get(broken).total == 1


@needs_redis
def test_reconcile_touches_no_poll_without_a_ballot_since_the_last_run():
    quiet, busy = make_poll(), make_poll()
    for poll in (quiet, busy):
        vote(poll, "long-ago")
        Ballot.objects.filter(poll=poll).update(submitted_at=timezone.now() - timedelta(hours=1))
        tally_get(poll)
        redis_for_poll(poll).srem(STALE_KEY, poll.id)
        redis_for_poll(poll).hincrby(tally_key(poll.id), "total", 5)  # drift that only a look would repair
    vote(busy, "now")
    now = timezone.now()

    assert upkeep.tallies_reconcile(now=now) == 1
    assert tally_get(busy).total == 2
    assert tally_get(quiet).total == 6  # never looked at: nothing of it was read or written

    # A run looks back to where the last one began (less the commit slack), then never again.
    upkeep.tallies_reconcile(now=now + timedelta(minutes=1))
    redis_for_poll(busy).hincrby(tally_key(busy.id), "total", 5)
    assert upkeep.tallies_reconcile(now=now + timedelta(minutes=2)) == 0
    vote_at(busy, "later", now + timedelta(minutes=2))
    assert upkeep.tallies_reconcile(now=now + timedelta(minutes=3)) == 1
    assert tally_get(busy).total == 3


@needs_redis
def test_reconcile_works_through_many_changed_polls_in_bounded_batches(monkeypatch, django_assert_max_num_queries):
    monkeypatch.setattr(reconcile, "BATCH_SIZE", 2)
    polls = [make_poll() for _ in range(5)]
    for poll in polls:
        tally_get(poll)
        redis_for_poll(poll).srem(STALE_KEY, poll.id)
        vote(poll, "v")
        redis_for_poll(poll).hincrby(tally_key(poll.id), "total", 3)
    looked_at = []
    polls_of_a_batch = reconcile.polls_with_choices

    def spy(*, poll_ids):
        looked_at.append(len(poll_ids))
        return polls_of_a_batch(poll_ids=poll_ids)

    monkeypatch.setattr(reconcile, "polls_with_choices", spy)
    assert tasks.reconcile_tallies() == 5
    assert looked_at == [2, 2, 1]  # each batch is then looked at shard by shard
    assert [tally_get(poll).total for poll in polls] == [1] * 5


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_new_poll_has_an_empty_tally_so_its_first_votes_count_at_once_without_a_rebuild():
    poll = make_poll()  # committed: its tally was stored after the commit
    assert redis_for_poll(poll).hgetall(tally_key(poll.id)) == {
        "version": "0",
        "total": "0",
        **{f"c:{choice.id}": "0" for choice in poll.choices.all()},
    }
    vote(poll, "first")
    assert tally_get(poll).total == 1
    assert not redis_for_poll(poll).sismember(STALE_KEY, poll.id)  # counted, not left for the reconciler
