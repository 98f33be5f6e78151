"""Single-row truths of the model: when a poll is open, its slug, its owner token."""

from datetime import timedelta

import pytest
from django.utils import timezone

from polls.models import SLUG_ALPHABET, Choice, Poll, hash_owner_token, new_slug


def test_a_slug_is_ten_unambiguous_characters_and_random():
    slugs = {new_slug() for _ in range(200)}
    assert len(slugs) == 200
    for slug in slugs:
        assert len(slug) == 10
        assert set(slug) <= set(SLUG_ALPHABET)
        assert not set(slug) & set("01ilo")


def test_a_poll_is_open_until_closed_by_hand():
    poll = Poll(question="Q?")
    assert poll.is_open()
    poll.closed = True
    assert not poll.is_open()


def test_a_poll_is_open_only_inside_its_window():
    now = timezone.now()
    poll = Poll(question="Q?", opens_at=now + timedelta(minutes=5), closes_at=now + timedelta(minutes=10))
    assert not poll.is_open(now)
    assert poll.is_open(now + timedelta(minutes=5))
    assert not poll.is_open(now + timedelta(minutes=10))


def test_one_choice_is_single_choice_and_more_is_multiple():
    assert not Poll(question="Q?", max_choices=1).is_multiple_choice
    assert Poll(question="Q?", max_choices=2).is_multiple_choice


def test_the_owner_token_check_compares_hashes():
    poll = Poll(question="Q?", owner_token_hash=hash_owner_token("secret"))
    assert poll.owner_token_matches("secret")
    assert not poll.owner_token_matches("Secret")
    assert not poll.owner_token_matches("")


def test_each_choice_has_its_own_bit_by_position():
    assert [Choice(text="x", position=i).bit for i in (0, 1, 19)] == [1, 2, 1 << 19]


@pytest.mark.django_db
def test_choices_come_back_in_their_position_order():
    poll = Poll.objects.create(question="Q?", owner_token_hash=hash_owner_token("t"))
    Choice.objects.create(poll=poll, text="second", position=1)
    Choice.objects.create(poll=poll, text="first", position=0)
    assert [choice.text for choice in poll.choices.all()] == ["first", "second"]
    assert poll.group_name == f"poll.{poll.slug}"
