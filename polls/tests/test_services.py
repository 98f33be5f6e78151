import pytest

from polls import selectors, services
from polls.models import Ballot, Poll

pytestmark = pytest.mark.django_db


def make_poll(**kwargs):
    kwargs.setdefault("question", "Best fruit?")
    kwargs.setdefault("choices", ["Apple", "Pear", "Plum"])
    poll, _token = services.poll_create(**kwargs)
    return selectors.poll_get(slug=poll.slug)


def test_a_vote_is_counted_once_per_voter():
    poll = make_poll()
    apple = poll.choices.all()[0]
    services.vote_cast(poll=poll, choice_ids=[apple.id], voter_key="v1", ip_address="10.0.0.1")
    with pytest.raises(services.AlreadyVoted):
        services.vote_cast(poll=poll, choice_ids=[apple.id], voter_key="v1", ip_address="10.0.0.1")
    results = selectors.poll_results(poll=poll)
    assert Ballot.objects.filter(poll=poll).count() == 1
    assert results.total == 1
    assert [c.votes for c in results.choices] == [1, 0, 0]


def test_it_rejects_a_vote_on_a_closed_poll():
    poll = make_poll()
    services.poll_close(poll=poll)
    with pytest.raises(services.PollClosed):
        services.vote_cast(poll=poll, choice_ids=[poll.choices.all()[0].id], voter_key="v1", ip_address=None)
    assert not Ballot.objects.exists()


def test_the_owner_token_is_stored_hashed():
    poll, token = services.poll_create(question="Q?", choices=["a", "b"])
    assert token not in poll.owner_token_hash
    assert Poll.objects.get(pk=poll.pk).owner_token_matches(token)
    assert not Poll.objects.get(pk=poll.pk).owner_token_matches(token + "x")
