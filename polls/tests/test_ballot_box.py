"""The ballot box's group commit: concurrent votes of one process share an INSERT, and each caller
still learns exactly whether its own ballot went in. Against real PostgreSQL, with threads."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.utils import timezone

from polls import ballot_box, services
from polls.models import Ballot

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


def insert_all(poll, voter_keys, *, ip_keys=None):
    """Every voter inserts at the same moment, one thread each; returns the ballot ids (or errors)."""
    ip_keys = ip_keys or [None] * len(voter_keys)
    start = threading.Barrier(len(voter_keys))

    def insert(index):
        start.wait()
        try:
            return ballot_box.ballot_insert(
                poll_id=poll.id,
                voter_key=voter_keys[index],
                ip_hash="",
                ip_key=ip_keys[index],
                choice_mask=1,
                submitted_at=timezone.now(),
            )
        except Exception as error:
            return error
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=len(voter_keys)) as pool:
        return list(pool.map(insert, range(len(voter_keys))))


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


def test_a_failed_statement_fails_each_of_its_votes_and_the_next_votes_still_go_in(poll, monkeypatch):
    original = ballot_box._insert_batch
    calls = []

    def fails_first(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            time.sleep(0.3)
            raise OperationalError("the database stopped answering")
        original(batch)

    monkeypatch.setattr(ballot_box, "_insert_batch", fails_first)

    first = insert_all(poll, [f"voter-{n}" for n in range(8)])
    failed = [outcome for outcome in first if isinstance(outcome, OperationalError)]
    assert len(failed) == calls[0]
    assert Ballot.objects.filter(poll=poll).count() == 8 - len(failed)

    second = insert_all(poll, [f"later-{n}" for n in range(8)])
    assert all(isinstance(ballot_id, int) for ballot_id in second)


def test_inside_a_transaction_the_ballot_is_inserted_alone_and_commits_with_it(poll, batch_sizes):
    with transaction.atomic():
        ballot_id = ballot_box.ballot_insert(
            poll_id=poll.id, voter_key="v", ip_hash="", ip_key=None, choice_mask=1, submitted_at=timezone.now()
        )
        transaction.set_rollback(True)

    assert ballot_id is not None
    assert batch_sizes == []
    assert not Ballot.objects.filter(poll=poll).exists()
