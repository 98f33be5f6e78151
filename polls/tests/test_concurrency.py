"""The vote under concurrency, against real PostgreSQL, Redis and a real Celery worker process.

Votes run in threads, each with its own database connection, against the service every door
calls (`vote_cast`). The database is the committed test database (`transactional_db`), so the
worker process, started once per session on that database, sees the same rows.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, connections

from crowdtick.celery import app as celery_app
from crowdtick.tests import processes
from polls import selectors, services, tasks, upkeep
from polls.models import Ballot
from polls.redis_client import redis_for_poll, redis_servers
from polls.tallies import reconcile
from polls.tallies.counts import tally_from_record, tally_get
from polls.tallies.keys import STALE_KEY, tally_key

ROOT = Path(__file__).resolve().parents[2]
services_configured = bool(connection.vendor == "postgresql" and settings.REDIS_URL)
pytestmark = [
    pytest.mark.services,
    pytest.mark.skipif(not services_configured, reason="needs DATABASE_URL (PostgreSQL) and REDIS_URL"),
]


def make_poll(**kwargs):
    poll, _token = services.poll_create(question="Tea or coffee?", choices=["Tea", "Coffee", "Water"], **kwargs)
    return selectors.poll_get(slug=poll.slug)


def in_threads(function, arguments, *, threads=32):
    """Runs `function` over `arguments` in parallel threads; returns the outcomes (value or exception)."""
    arguments = list(arguments)
    outcomes = [None] * len(arguments)

    def work(offset):
        try:
            for index in range(offset, len(arguments), threads):
                try:
                    outcomes[index] = function(arguments[index])
                except Exception as error:  # the outcome under test, e.g. AlreadyVoted
                    outcomes[index] = error
        finally:
            connections.close_all()  # this thread's connection: the test database is dropped later

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(work, range(threads)))
    return outcomes


def redis_counts(poll):
    cached = redis_for_poll(poll).hgetall(tally_key(poll.id))
    return {key: int(value) for key, value in cached.items() if key != "version"}


def record_counts(poll):
    tally = tally_from_record(poll)
    return {"total": tally.total, **{f"c:{choice_id}": votes for choice_id, votes in tally.counts.items()}}


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker):
    """A real `celery worker` process on the test database and the test Redis."""
    env = processes.test_database_env(REDIS_URL=settings.REDIS_URL, SECRET_KEY=settings.SECRET_KEY)
    command = [
        sys.executable,
        "-m",
        "celery",
        "--app",
        "crowdtick",
        "worker",
        "--pool",
        "solo",
        "--loglevel",
        "WARNING",
    ]
    command += ["--without-gossip", "--without-mingle", "--hostname", f"test-{os.getpid()}@%h"]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        _wait_until_worker_answers(process)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_worker_answers(process, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the Celery worker exited at start-up (code {process.returncode})")
        if celery_app.control.ping(timeout=0.5):
            return
    pytest.fail("the Celery worker did not answer a ping within 30 s")


@pytest.fixture
def worker(celery_worker, transactional_db):
    """The session's worker, with the broker's queue binding declared again: every test starts
    with a flushed Redis database (conftest.py), which removes it."""
    with celery_app.connection_for_write() as broker:
        for queue in celery_app.amqp.queues.values():
            queue(broker.default_channel).declare()
    return celery_worker


@pytest.fixture
def throwaway_redis(settings):
    """A private redis-server on a free port of this project's range, pointed at by REDIS_URL (and as
    its one shard), so a test may stop it without touching the shared one."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    port = _free_port(range(8400, 8500))

    def start():
        process = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return process
            except OSError:
                time.sleep(0.05)
        process.kill()
        pytest.fail("the throwaway redis-server did not start")

    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    settings.REDIS_SHARD_URLS = [settings.REDIS_URL]
    servers = [start()]
    yield servers, start
    for process in servers:
        process.kill()
        process.wait()


def _free_port(candidates):
    for port in candidates:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    pytest.skip("no free port in 8400-8499")


def test_a_thousand_concurrent_votes_from_one_voter_make_exactly_one_ballot(transactional_db, settings):
    settings.RATELIMIT_ENABLE = False  # the per-voter limit would refuse most first: this is about the ballot box
    poll = make_poll()
    tally_get(poll)  # the tally exists, so the one counted ballot increments it
    tea = poll.choices.all()[0]

    outcomes = in_threads(
        lambda _: services.vote_cast(poll=poll, choice_ids=[tea.id], voter_key="same-phone", ip_address="10.0.0.1"),
        range(1000),
    )

    assert sum(not isinstance(outcome, Exception) for outcome in outcomes) == 1
    assert all(isinstance(outcome, services.AlreadyVoted) for outcome in outcomes if isinstance(outcome, Exception))
    assert Ballot.objects.filter(poll=poll).count() == 1
    assert redis_counts(poll) == record_counts(poll) == {"total": 1, f"c:{tea.id}": 1, **_zero(poll, tea)}


def test_five_thousand_distinct_voters_in_parallel_make_five_thousand_ballots_and_an_exact_tally(transactional_db):
    poll = make_poll()
    tally_get(poll)
    choices = list(poll.choices.all())

    outcomes = in_threads(
        lambda i: services.vote_cast(
            poll=poll, choice_ids=[choices[i % 3].id], voter_key=f"voter-{i}", ip_address=f"10.1.{i // 250}.{i % 250}"
        ),
        range(5000),
    )

    assert [outcome for outcome in outcomes if isinstance(outcome, Exception)] == []
    assert Ballot.objects.filter(poll=poll).count() == 5000
    assert redis_counts(poll) == record_counts(poll)
    assert record_counts(poll) == {
        "total": 5000,
        **{f"c:{c.id}": len(range(i, 5000, 3)) for i, c in enumerate(choices)},
    }
    assert int(redis_for_poll(poll).hget(tally_key(poll.id), "version")) == 5000


def test_the_worker_restores_exact_counts_after_redis_is_flushed_midway(worker):
    poll = make_poll()
    tally_get(poll)
    choices = list(poll.choices.all())

    def cast(i):
        services.vote_cast(poll=poll, choice_ids=[choices[i % 3].id], voter_key=f"v{i}", ip_address=None)

    in_threads(cast, range(0, 600))
    for server in redis_servers():
        server.flushdb()  # the tally, the changed marks and the broker's bindings are gone
    in_threads(cast, range(600, 1200))
    assert not redis_for_poll(poll).exists(tally_key(poll.id))  # votes do not invent a partial tally...
    assert redis_for_poll(poll).sismember(STALE_KEY, poll.id)  # ...they mark it stale for the reconciler

    with celery_app.connection_for_write() as broker:
        for queue in celery_app.amqp.queues.values():
            queue(broker.default_channel).declare()
    tasks.reconcile_tallies.delay()

    def repaired():  # the count first, then the mark, once the rebuilt tally had its second look
        return redis_counts(poll) == record_counts(poll) and not redis_for_poll(poll).sismember(STALE_KEY, poll.id)

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not repaired():
        time.sleep(0.1)
    assert Ballot.objects.filter(poll=poll).count() == 1200
    assert redis_counts(poll) == record_counts(poll)
    assert not redis_for_poll(poll).sismember(STALE_KEY, poll.id)


def test_votes_still_succeed_with_redis_stopped_and_the_tally_heals_when_it_returns(transactional_db, throwaway_redis):
    servers, start_redis = throwaway_redis
    poll = make_poll()
    tally_get(poll)
    tea, coffee = list(poll.choices.all())[:2]

    def cast(i):
        services.vote_cast(poll=poll, choice_ids=[tea.id if i % 2 else coffee.id], voter_key=f"v{i}", ip_address=None)

    assert in_threads(cast, range(0, 50)) == [None] * 50
    servers[0].kill()
    servers[0].wait()

    outcomes = in_threads(cast, range(50, 150))
    results = selectors.poll_results(poll=poll)  # from the record while Redis is away

    assert [outcome for outcome in outcomes if isinstance(outcome, Exception)] == []
    assert Ballot.objects.filter(poll=poll).count() == 150
    assert results.total == 150
    assert {choice.text: choice.votes for choice in results.choices} == {"Tea": 75, "Coffee": 75, "Water": 0}

    servers.append(start_redis())  # back, empty
    upkeep.tallies_reconcile()
    assert (
        redis_counts(poll)
        == record_counts(poll)
        == {"total": 150, f"c:{tea.id}": 75, f"c:{coffee.id}": 75, **_zero(poll, tea, coffee)}
    )


def _zero(poll, *counted):
    return {f"c:{choice.id}": 0 for choice in poll.choices.all() if choice not in counted}


def test_a_tally_that_lost_votes_is_exact_after_one_reconcile_run_while_votes_keep_arriving(
    transactional_db, monkeypatch
):
    poll = make_poll()
    tally_get(poll)
    choices = list(poll.choices.all())

    def cast(i):
        services.vote_cast(poll=poll, choice_ids=[choices[i % 3].id], voter_key=f"v{i}", ip_address=None)

    # Redis restarted from an older save: the tally misses six ballots the record holds.
    saved = redis_for_poll(poll).hgetall(tally_key(poll.id))
    in_threads(cast, range(0, 6), threads=3)
    redis_for_poll(poll).delete(tally_key(poll.id))
    redis_for_poll(poll).hset(tally_key(poll.id), mapping=saved)

    def votes_arrive_while_the_reconciler_looks(seconds):
        in_threads(cast, range(6, 10), threads=2)  # committed and counted in Redis meanwhile

    monkeypatch.setattr(reconcile.time, "sleep", votes_arrive_while_the_reconciler_looks)
    assert upkeep.tallies_reconcile() == 1

    assert redis_counts(poll) == record_counts(poll)
    assert record_counts(poll)["total"] == 10
