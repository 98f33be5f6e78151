"""Archiving idle polls: closed, out of every periodic task's work, their Redis keys released, and
their results still readable (upkeep.polls_archive_idle, the beat task archive_idle_polls)."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from polls import selectors, services, tasks, upkeep
from polls.models import Ballot, Poll
from polls.redis_client import redis_for_poll, redis_servers
from polls.tallies.counts import ARCHIVED_TALLY_SECONDS
from polls.tallies.keys import STALE_KEY, tally_key

pytestmark = pytest.mark.django_db
needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")


@pytest.fixture(autouse=True)
def _archive_after_30_days(settings):
    settings.POLL_ARCHIVE_AFTER_DAYS = 30


def make_poll(*, days_old: int = 60, **kwargs) -> Poll:
    poll, _token = services.poll_create(question="Lunch?", choices=["Soup", "Salad"], **kwargs)
    made = timezone.now() - timedelta(days=days_old)
    Poll.objects.filter(id=poll.id).update(created_at=made, active_at=made)
    return Poll.objects.get(id=poll.id)


def vote(poll: Poll, voter: str, *, days_ago: float) -> None:
    poll = selectors.poll_get(slug=poll.slug)
    services.vote_cast(poll=poll, choice_ids=[poll.choices.all()[0].id], voter_key=voter, ip_address=None)
    Ballot.objects.filter(poll=poll, voter_key=voter).update(submitted_at=timezone.now() - timedelta(days=days_ago))


def test_it_archives_a_poll_without_activity_and_none_with_recent_activity():
    idle = make_poll()
    vote(idle, "a", days_ago=45)
    voted_lately = make_poll()
    vote(voted_lately, "a", days_ago=45)
    vote(voted_lately, "b", days_ago=2)
    new = make_poll(days_old=3)
    deadline_ahead = make_poll(closes_at=timezone.now() + timedelta(days=10))
    opens_later = make_poll(opens_at=timezone.now() + timedelta(days=5))
    closed_by_owner_lately = make_poll()
    services.poll_close(poll=selectors.poll_get(slug=closed_by_owner_lately.slug))

    assert tasks.archive_idle_polls() == 1

    idle.refresh_from_db()
    assert idle.archived_at is not None and idle.closed and not idle.is_open()
    assert selectors.poll_results(poll=idle).total == 1  # still readable
    kept = [voted_lately, new, deadline_ahead, opens_later, closed_by_owner_lately]
    for poll in kept:
        poll.refresh_from_db()
        assert poll.archived_at is None, poll
    assert not any(poll.closed for poll in kept[:-1])
    # A poll found in use is not looked at again before it could be idle: its last ballot, its deadline.
    assert voted_lately.active_at == Ballot.objects.get(poll=voted_lately, voter_key="b").submitted_at
    assert deadline_ahead.active_at == deadline_ahead.closes_at
    assert selectors.polls_last_activity(known_before=timezone.now() - timedelta(days=30), limit=100) == {}
    assert tasks.archive_idle_polls() == 0


@needs_redis
def test_an_archived_poll_releases_its_redis_keys_no_task_looks_at_it_and_its_results_come_from_the_record(
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        poll = make_poll()
        for voter in ("a", "b", "c"):
            vote(poll, voter, days_ago=40)
    redis = redis_for_poll(poll)
    copy_key = f"pollcopy:{poll.slug}"
    redis.sadd(STALE_KEY, poll.id)
    assert redis.exists(tally_key(poll.id), copy_key) == 2 and redis.hget(tally_key(poll.id), "total") == "3"

    with django_capture_on_commit_callbacks(execute=True):
        assert upkeep.polls_archive_idle() == 1
    assert redis.exists(tally_key(poll.id), copy_key) == 0 and not redis.sismember(STALE_KEY, poll.id)

    # Every periodic task leaves it alone: none brings a key of it back. Its revision, bumped by the
    # archiving so that every process sees it closed, expires within a day (poll_cache).
    with django_capture_on_commit_callbacks(execute=True):
        upkeep.tallies_reconcile()
        upkeep.vote_minutes_refresh()
        upkeep.poll_deadlines_announce()
        upkeep.polls_archive_idle()
    every_key = [key for server in redis_servers() for key in server.scan_iter("*")]
    keys = [key for key in every_key if str(poll.id) in key.split(":") or poll.slug in key]
    assert keys == [f"pollrev:{poll.slug}"] and 0 < redis.ttl(keys[0]) <= 24 * 60 * 60

    # Its results stay readable: counted from the record, the tally kept an hour, no reconcile run asked for.
    browser = Client(HTTP_HOST="127.0.0.1")
    body = browser.get(f"/api/polls/{poll.slug}/results/").json()
    assert (body["total"], body["closed"], [c["votes"] for c in body["choices"]]) == (3, True, [3, 0])
    assert 0 < redis.ttl(tally_key(poll.id)) <= ARCHIVED_TALLY_SECONDS
    assert not redis.sismember(STALE_KEY, poll.id)
    page = browser.get(f"/p/{poll.slug}/results/")
    assert page.status_code == 200 and "Soup" in page.content.decode()


def test_reopening_an_archived_poll_brings_it_back():
    poll = make_poll()
    assert upkeep.polls_archive_idle() == 1
    services.poll_reopen(poll=selectors.poll_get(slug=poll.slug))
    poll.refresh_from_db()
    assert poll.archived_at is None and poll.is_open()
    vote(poll, "back", days_ago=0)
    assert upkeep.polls_archive_idle() == 0


def test_the_owner_page_says_the_poll_was_archived_and_offers_to_reopen_it():
    poll, token = services.poll_create(question="Lunch?", choices=["Soup", "Salad"])
    Poll.objects.filter(id=poll.id).update(active_at=timezone.now() - timedelta(days=31))
    assert upkeep.polls_archive_idle() == 1
    page = Client(HTTP_HOST="127.0.0.1").get(f"/p/{poll.slug}/manage/{token}/").content.decode()
    assert "Archived on " in page and "Reopen voting" in page


def test_a_run_works_in_bounded_batches_and_its_queries_do_not_grow_with_the_polls(monkeypatch):
    monkeypatch.setattr(upkeep, "ARCHIVE_BATCH_SIZE", 2)
    monkeypatch.setattr(upkeep, "ARCHIVE_BATCHES_PER_RUN", 2)
    for _ in range(5):
        make_poll()
    assert [upkeep.polls_archive_idle() for _ in range(3)] == [4, 1, 0]

    monkeypatch.setattr(upkeep, "ARCHIVE_BATCH_SIZE", 10)
    queries = []
    for count in (1, 6):
        for _ in range(count):
            make_poll()
        with CaptureQueriesContext(connection) as run:
            assert upkeep.polls_archive_idle() == count
        queries.append(len(run.captured_queries))
    assert queries[0] == queries[1]


def test_archiving_can_be_turned_off(settings):
    settings.POLL_ARCHIVE_AFTER_DAYS = 0
    make_poll(days_old=400)
    assert upkeep.polls_archive_idle() == 0


def test_the_archiving_task_is_on_the_beat_schedule():
    assert settings.CELERY_BEAT_SCHEDULE["archive-idle-polls"]["task"] == tasks.archive_idle_polls.name
