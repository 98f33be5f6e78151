"""The ballot box's group commit: concurrent votes of one process share an INSERT, and each caller
still learns exactly whether its own ballot went in. Against real PostgreSQL, with threads."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.utils import timezone

from polls import ballot_box, services
from polls.models import Ballot
from polls.tallies.counts import tally_get

pytestmark = [
    pytest.mark.services,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="group commit runs on PostgreSQL only"),
]


@pytest.fixture
def poll(transactional_db):
    poll, _token = services.poll_create(question="Tea or coffee?", choices=["Tea", "Coffee"])
    return poll


@pytest.fixture
def batch_sizes(monkeypatch):
    """Records each statement's number of ballots; the first statement lingers so others queue up."""
    sizes = []
    original = ballot_box._insert_batch

    def spy(batch):
        sizes.append(len(batch))
        if len(sizes) == 1:
            time.sleep(0.3)
        original(batch)

    monkeypatch.setattr(ballot_box, "_insert_batch", spy)
    return sizes


def insert(poll, voter_key, ip_key=None):
    return ballot_box.ballot_insert(
        poll_id=poll.id, voter_key=voter_key, ip_hash="", ip_key=ip_key, choice_mask=1, submitted_at=timezone.now()
    )


def outcome_of(function):
    """Runs in a worker thread: what `function` returns, or the exception it raises."""
    try:
        return function()
    except Exception as error:
        return error
    finally:
        connections.close_all()


def insert_all(poll, voter_keys, *, ip_keys=None):
    """Every voter inserts at the same moment, one thread each; returns the ballot ids (or errors)."""
    ip_keys = ip_keys or [None] * len(voter_keys)
    start = threading.Barrier(len(voter_keys))

    def insert_at_once(index):
        start.wait()
        return outcome_of(partial(insert, poll, voter_keys[index], ip_keys[index]))

    with ThreadPoolExecutor(max_workers=len(voter_keys)) as pool:
        return list(pool.map(insert_at_once, range(len(voter_keys))))


class HeldStatements:
    """Stands in for `_insert_batch`. The first statement is held, once started, until `queued`
    ballots wait behind it, so that those share the next statement: no race decides the batches.
    The statements numbered in `failing` (from 1) raise, as when the database stops answering."""

    def __init__(self, *, queued, failing=()):
        self.queued, self.failing = queued, set(failing)
        self.running = threading.Event()
        self.batches = []  # the voter keys of each statement
        self._insert_batch = ballot_box._insert_batch

    def __call__(self, batch):
        self.batches.append(sorted(pending.params[1] for pending in batch))
        if len(self.batches) == 1:
            self.running.set()
            _wait_for(lambda: len(ballot_box._group_commit._queue) >= self.queued, f"{self.queued} ballots queued")
        if len(self.batches) in self.failing:
            raise OperationalError("the database stopped answering")
        self._insert_batch(batch)


def _wait_for(condition, what):
    for _ in range(1000):  # a guard against a hang, not a timing: the condition is what is awaited
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"never came: {what}")


@pytest.fixture
def hold_first_statement(monkeypatch):
    def hold(**kwargs):
        held = HeldStatements(**kwargs)
        monkeypatch.setattr(ballot_box, "_insert_batch", held)
        return held

    return hold


def behind_a_held_statement(held, first, *queued):
    """Runs `first` in a thread; once its statement is held, runs each of `queued` in a thread of its
    own, all queuing behind it. Returns each one's outcome (value or exception), `first`'s first."""
    with ThreadPoolExecutor(max_workers=1 + len(queued)) as pool:
        futures = [pool.submit(outcome_of, first)]
        _wait_for(held.running.is_set, "the first statement")
        futures += [pool.submit(outcome_of, function) for function in queued]
        return [future.result() for future in futures]


def test_concurrent_ballots_share_statements_and_each_caller_gets_its_own_id(poll, batch_sizes):
    voters = [f"voter-{n}" for n in range(24)]

    ids = insert_all(poll, voters)

    assert max(batch_sizes) > 1, "the votes that queued during the first statement were written together"
    assert sum(batch_sizes) == 24
    rows = dict(Ballot.objects.filter(poll=poll).values_list("voter_key", "id"))
    assert ids == [rows[voter] for voter in voters]


def test_one_voter_voting_from_many_threads_at_once_gets_exactly_one_ballot(poll, batch_sizes):
    ids = insert_all(poll, ["same-voter"] * 16)

    assert sum(1 for ballot_id in ids if ballot_id is not None) == 1
    assert ids.count(None) == 15
    assert Ballot.objects.filter(poll=poll).count() == 1


def test_two_voters_from_one_address_on_an_address_deduped_poll_get_one_ballot(poll, batch_sizes):
    ids = insert_all(poll, [f"voter-{n}" for n in range(8)], ip_keys=["same-address"] * 8)

    assert sum(1 for ballot_id in ids if ballot_id is not None) == 1
    assert Ballot.objects.filter(poll=poll).count() == 1


def test_when_a_statement_of_several_ballots_fails_each_of_its_voters_gets_the_error(poll, hold_first_statement):
    held = hold_first_statement(queued=3, failing={2})
    votes = [partial(insert, poll, voter) for voter in ("first", "a", "b", "c")]

    first, *queued = behind_a_held_statement(held, *votes)

    assert held.batches == [["first"], ["a", "b", "c"]]
    assert isinstance(first, int)
    # None would tell a voter "you already voted" for a vote that was never recorded.
    assert [type(outcome) for outcome in queued] == [OperationalError] * 3
    assert list(Ballot.objects.filter(poll=poll).values_list("voter_key", flat=True)) == ["first"]
    assert all(isinstance(insert(poll, voter), int) for voter in ("a", "b", "c")), "they can vote again"


def test_two_votes_of_one_voter_waiting_together_make_one_ballot_one_refusal_and_one_count(poll, hold_first_statement):
    held = hold_first_statement(queued=2)
    choice = poll.choices.first()

    def vote(voter_key):
        return services.vote_cast(poll=poll, choice_ids=[choice.id], voter_key=voter_key, ip_address=None)

    first, *twins = behind_a_held_statement(held, partial(vote, "first"), partial(vote, "twin"), partial(vote, "twin"))

    assert isinstance(first, services.CastBallot)
    # The API's 201 and 409.
    assert sorted(type(outcome).__name__ for outcome in twins) == ["AlreadyVoted", "CastBallot"]
    assert Ballot.objects.filter(poll=poll, voter_key="twin").count() == 1
    assert tally_get(poll).total == 2


def test_inside_a_transaction_the_ballot_is_inserted_alone_and_commits_with_it(poll, batch_sizes):
    with transaction.atomic():
        ballot_id = ballot_box.ballot_insert(
            poll_id=poll.id, voter_key="v", ip_hash="", ip_key=None, choice_mask=1, submitted_at=timezone.now()
        )
        transaction.set_rollback(True)

    assert ballot_id is not None
    assert batch_sizes == []
    assert not Ballot.objects.filter(poll=poll).exists()
