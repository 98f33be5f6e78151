"""The write rules, against the real database: creating, voting, closing, settings, deleting."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from polls import selectors, services
from polls.models import CHOICE_MAX_LENGTH, QUESTION_MAX_LENGTH, Ballot, Choice, Poll

pytestmark = pytest.mark.django_db


def make_poll(**kwargs) -> Poll:
    kwargs.setdefault("question", "Best fruit?")
    kwargs.setdefault("choices", ["Apple", "Pear", "Plum"])
    poll, _token = services.poll_create(**kwargs)
    return selectors.poll_get(slug=poll.slug)


def choice_ids(poll: Poll) -> list[int]:
    return [choice.id for choice in poll.choices.all()]


def cast(poll: Poll, picks: list[int], *, voter: str | None = "voter-1", ip: str | None = "203.0.113.7"):
    return services.vote_cast(poll=poll, choice_ids=picks, voter_key=voter, ip_address=ip)


def counts(poll: Poll) -> list[int]:
    return [choice.votes for choice in selectors.poll_results(poll=poll).choices]


# --- poll_create ---------------------------------------------------------------------------


def test_a_new_poll_gets_the_pinned_defaults_and_its_choices_in_order():
    poll = make_poll(choices=["  Apple ", "Pear", "", "Plum"])
    assert (poll.max_choices, poll.dedupe, poll.results_visibility) == (1, "browser", "always")
    assert [choice.text for choice in poll.choices.all()] == ["Apple", "Pear", "Plum"]
    assert [choice.position for choice in poll.choices.all()] == [0, 1, 2]
    assert len(poll.slug) == 10 and not poll.slug.isdigit()


def test_two_polls_never_share_a_slug_or_an_owner_token():
    first, first_token = services.poll_create(question="A?", choices=["a", "b"])
    second, second_token = services.poll_create(question="B?", choices=["a", "b"])
    assert first.slug != second.slug
    assert first_token != second_token
    assert len(first_token) >= 32


def test_the_owner_token_is_stored_hashed():
    poll, token = services.poll_create(question="Q?", choices=["a", "b"])
    stored = Poll.objects.get(pk=poll.pk)
    assert token not in stored.owner_token_hash
    assert stored.owner_token_matches(token)
    assert not stored.owner_token_matches(token + "x")


@pytest.mark.parametrize(
    ("fields", "error_field"),
    [
        ({"question": ""}, "question"),
        ({"question": "   "}, "question"),
        ({"question": "x" * (QUESTION_MAX_LENGTH + 1)}, "question"),
        ({"choices": ["Only one"]}, "choices"),
        ({"choices": ["Only one", "  ", ""]}, "choices"),
        ({"choices": [f"Choice {i}" for i in range(21)]}, "choices"),
        ({"choices": ["Apple", "apple "]}, "choices"),
        ({"choices": ["Apple", "x" * (CHOICE_MAX_LENGTH + 1)]}, "choices"),
        ({"max_choices": 0}, "max_choices"),
        ({"max_choices": 4}, "max_choices"),
        ({"closes_at": timezone.now() - timedelta(minutes=1)}, "closes_at"),
        ({"results_visibility": "sometimes"}, "results_visibility"),
        ({"dedupe": "cookie-jar"}, "dedupe"),
    ],
)
def test_it_refuses_to_create_a_poll_from_bad_input_and_says_which_field(fields, error_field):
    with pytest.raises(ValidationError) as refused:
        make_poll(**fields)
    assert error_field in refused.value.message_dict
    assert not Poll.objects.exists()
    assert not Choice.objects.exists()


def test_it_accepts_exactly_twenty_choices_and_a_maximum_equal_to_their_number():
    poll = make_poll(choices=[f"Choice {i}" for i in range(20)], max_choices=20)
    assert poll.choices.count() == 20
    assert poll.is_multiple_choice


# --- vote_cast: what counts ----------------------------------------------------------------


def test_a_vote_is_counted_once_per_browser():
    poll = make_poll()
    apple = choice_ids(poll)[0]
    cast(poll, [apple], voter="v1", ip="10.0.0.1")
    with pytest.raises(services.AlreadyVoted):
        cast(poll, [apple], voter="v1", ip="10.0.0.2")
    assert Ballot.objects.filter(poll=poll).count() == 1
    assert counts(poll) == [1, 0, 0]


def test_browser_mode_counts_two_browsers_behind_one_address():
    poll = make_poll(dedupe="browser")
    apple, pear, _ = choice_ids(poll)
    cast(poll, [apple], voter="v1", ip="10.0.0.1")
    cast(poll, [pear], voter="v2", ip="10.0.0.1")
    assert counts(poll) == [1, 1, 0]


def test_ip_mode_refuses_the_same_address_with_another_cookie():
    poll = make_poll(dedupe="ip")
    apple, pear, _ = choice_ids(poll)
    cast(poll, [apple], voter="v1", ip="198.51.100.4")
    with pytest.raises(services.AlreadyVoted):
        cast(poll, [pear], voter="v2", ip="198.51.100.4")
    cast(poll, [pear], voter="v3", ip="198.51.100.5")
    assert counts(poll) == [1, 1, 0]


def test_ip_mode_refuses_another_address_in_the_same_ipv6_slash_64():
    poll = make_poll(dedupe="ip")
    apple, pear, _ = choice_ids(poll)
    cast(poll, [apple], voter="v1", ip="2001:db8:1:2::10")
    with pytest.raises(services.AlreadyVoted):
        cast(poll, [pear], voter="v2", ip="2001:db8:1:2:ffff::1")
    cast(poll, [pear], voter="v3", ip="2001:db8:1:3::10")
    assert counts(poll) == [1, 1, 0]


def test_ip_mode_counts_ipv4_clients_seen_as_ipv4_mapped_ipv6_addresses_by_their_own_address():
    poll = make_poll(dedupe="ip")
    apple, pear, _ = choice_ids(poll)
    cast(poll, [apple], voter="v1", ip="::ffff:198.51.100.4")
    cast(poll, [pear], voter="v2", ip="::ffff:203.0.113.9")
    with pytest.raises(services.AlreadyVoted):
        cast(poll, [pear], voter="v3", ip="198.51.100.4")  # the first client, seen without the wrapping
    assert counts(poll) == [1, 1, 0]


def test_ip_mode_still_refuses_the_same_cookie_from_a_new_address():
    poll = make_poll(dedupe="ip")
    apple = choice_ids(poll)[0]
    cast(poll, [apple], voter="v1", ip="198.51.100.4")
    with pytest.raises(services.AlreadyVoted):
        cast(poll, [apple], voter="v1", ip="198.51.100.99")
    assert counts(poll) == [1, 0, 0]


def test_the_address_is_stored_only_as_a_per_poll_salted_hash():
    first, second = make_poll(dedupe="ip"), make_poll(dedupe="ip")
    cast(first, choice_ids(first)[:1], ip="198.51.100.4")
    cast(second, choice_ids(second)[:1], ip="198.51.100.4")
    hashes = list(Ballot.objects.values_list("ip_hash", flat=True))
    assert all(len(h) == 64 and "198.51" not in h for h in hashes)
    assert hashes[0] != hashes[1]


def test_none_mode_counts_every_repeated_vote():
    poll = make_poll(dedupe="none")
    apple, pear, _ = choice_ids(poll)
    for _ in range(3):
        cast(poll, [apple], voter="v1", ip="10.0.0.1")
    cast(poll, [pear], voter=None, ip=None)
    assert counts(poll) == [3, 1, 0]
    assert selectors.poll_results(poll=poll).total == 4
    assert selectors.voter_has_voted(poll=poll, voter_key="v1")
    assert not selectors.voter_has_voted(poll=poll, voter_key="v2")


def test_a_vote_without_a_voter_key_is_refused_when_the_poll_dedupes():
    poll = make_poll(dedupe="browser")
    with pytest.raises(services.VoterRequired):
        cast(poll, choice_ids(poll)[:1], voter=None)
    assert not Ballot.objects.exists()


# --- vote_cast: max_choices and the choices themselves -------------------------------------


def test_a_single_choice_poll_refuses_two_picks():
    poll = make_poll()
    with pytest.raises(services.InvalidChoices, match="only one"):
        cast(poll, choice_ids(poll)[:2])
    assert not Ballot.objects.exists()


def test_a_multiple_choice_poll_counts_each_pick_and_the_ballot_once():
    poll = make_poll(max_choices=2)
    apple, pear, plum = choice_ids(poll)
    cast(poll, [apple, plum], voter="v1")
    cast(poll, [plum], voter="v2")
    results = selectors.poll_results(poll=poll)
    assert counts(poll) == [1, 0, 2]
    assert results.total == 2
    assert [choice.percent for choice in results.choices] == [50, 0, 100]


def test_a_multiple_choice_poll_refuses_more_picks_than_its_maximum():
    poll = make_poll(max_choices=2)
    with pytest.raises(services.InvalidChoices, match="at most 2"):
        cast(poll, choice_ids(poll))
    assert not Ballot.objects.exists()


def test_it_refuses_the_same_choice_picked_twice():
    poll = make_poll(max_choices=3)
    apple = choice_ids(poll)[0]
    with pytest.raises(services.InvalidChoices, match="only once"):
        cast(poll, [apple, apple])


def test_it_refuses_a_choice_of_another_poll():
    poll, other = make_poll(), make_poll(question="Other?")
    with pytest.raises(services.InvalidChoices, match="not part of this poll"):
        cast(poll, choice_ids(other)[:1])
    with pytest.raises(services.InvalidChoices):
        cast(poll, [999_999_999])
    assert not Ballot.objects.exists()


def test_it_refuses_an_empty_ballot():
    poll = make_poll()
    with pytest.raises(services.InvalidChoices, match="at least one"):
        cast(poll, [])


# --- vote_cast: when the poll takes votes --------------------------------------------------


def test_it_rejects_a_vote_on_a_closed_poll():
    poll = make_poll()
    services.poll_close(poll=poll)
    with pytest.raises(services.PollClosed):
        cast(poll, choice_ids(poll)[:1])
    assert not Ballot.objects.exists()


def test_it_rejects_a_vote_after_the_deadline():
    poll = make_poll(closes_at=timezone.now() + timedelta(hours=1))
    Poll.objects.filter(pk=poll.pk).update(closes_at=timezone.now() - timedelta(seconds=1))
    poll = selectors.poll_get(slug=poll.slug)
    with pytest.raises(services.PollClosed):
        cast(poll, choice_ids(poll)[:1])
    assert not Ballot.objects.exists()
    assert selectors.poll_results(poll=poll).closed


def test_it_rejects_a_vote_before_the_poll_opens():
    poll = make_poll(opens_at=timezone.now() + timedelta(hours=1))
    with pytest.raises(services.PollNotOpenYet, match="not open yet"):
        cast(poll, choice_ids(poll)[:1])
    assert not Ballot.objects.exists()


def test_a_poll_that_opens_after_it_closes_is_refused():
    now = timezone.now()
    with pytest.raises(ValidationError) as refused:
        make_poll(opens_at=now + timedelta(hours=2), closes_at=now + timedelta(hours=1))
    assert "opens_at" in refused.value.message_dict


# --- owner actions -------------------------------------------------------------------------


def test_closing_then_reopening_takes_votes_again():
    poll = make_poll()
    services.poll_close(poll=poll)
    assert not Poll.objects.get(pk=poll.pk).is_open()
    services.poll_reopen(poll=poll)
    assert Poll.objects.get(pk=poll.pk).is_open()
    cast(poll, choice_ids(poll)[:1])
    assert counts(poll) == [1, 0, 0]


def test_reopening_after_the_deadline_clears_the_deadline():
    poll = make_poll()
    Poll.objects.filter(pk=poll.pk).update(closes_at=timezone.now() - timedelta(minutes=5))
    poll = selectors.poll_get(slug=poll.slug)
    services.poll_reopen(poll=poll)
    reopened = Poll.objects.get(pk=poll.pk)
    assert reopened.closes_at is None and reopened.is_open()


def test_update_settings_sets_and_clears_the_deadline_and_visibility():
    poll = make_poll()
    deadline = timezone.now() + timedelta(days=1)
    services.poll_update_settings(poll=poll, closes_at=deadline, results_visibility="after_close")
    stored = Poll.objects.get(pk=poll.pk)
    assert (stored.closes_at, stored.results_visibility) == (deadline, "after_close")
    services.poll_update_settings(poll=stored, closes_at=None, results_visibility="after_vote")
    stored = Poll.objects.get(pk=poll.pk)
    assert (stored.closes_at, stored.results_visibility) == (None, "after_vote")


def test_update_settings_refuses_a_deadline_in_the_past_and_an_unknown_visibility():
    poll = make_poll()
    with pytest.raises(ValidationError) as past:
        an_hour_ago = timezone.now() - timedelta(hours=1)
        services.poll_update_settings(poll=poll, closes_at=an_hour_ago, results_visibility="always")
    assert "closes_at" in past.value.message_dict
    with pytest.raises(ValidationError) as unknown:
        services.poll_update_settings(poll=poll, closes_at=None, results_visibility="never")
    assert "results_visibility" in unknown.value.message_dict
    assert Poll.objects.get(pk=poll.pk).results_visibility == "always"


def test_deleting_a_poll_deletes_its_choices_and_ballots():
    poll, kept = make_poll(), make_poll(question="Kept?")
    cast(poll, choice_ids(poll)[:1])
    cast(kept, choice_ids(kept)[:1])
    services.poll_delete(poll=poll)
    assert not Poll.objects.filter(slug=poll.slug).exists()
    assert not Choice.objects.filter(poll_id=poll.id).exists()
    assert Ballot.objects.count() == 1
    with pytest.raises(Poll.DoesNotExist):
        selectors.poll_get(slug=poll.slug)
