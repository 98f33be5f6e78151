"""Word clouds (DESIGN.md, "Question kinds"): voters type terms, counted by their normalised form, in
Redis after the commit and exactly from the record; the owner hides terms and filters profanity."""

import csv
import io

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import TestCase

from polls import moderation, selectors, services, tasks
from polls.models import Ballot, Poll
from polls.redis_client import redis_for_poll
from polls.tallies import reconcile
from polls.tallies.counts import tally_from_record, tally_get, tally_record_ballot
from polls.tallies.keys import poll_tally_keys, tally_key, words_key
from polls.words import CLOUD_MAX_TERMS, CLOUD_SIZES, cloud_terms, term_normalised

pytestmark = pytest.mark.django_db
needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="tallies are cached in Redis only with REDIS_URL")


def make_cloud(**kwargs) -> Poll:
    poll, _ = services.poll_create(question="One word for today?", kind="words", **kwargs)
    return selectors.poll_get(slug=poll.slug)


def send(poll: Poll, voter: str, *words: str) -> services.CastBallot:
    with TestCase.captureOnCommitCallbacks(execute=True):
        return services.vote_cast(poll=poll, choice_ids=[], words=list(words), voter_key=voter, ip_address=None)


def cloud(poll: Poll) -> list[tuple[str, int]]:
    results = selectors.poll_results(poll=selectors.poll_get(slug=poll.slug))
    return [(term.text, term.count) for term in results.cloud]


def test_a_word_cloud_has_no_choices_and_takes_3_words_by_default():
    poll = make_cloud()
    assert (poll.kind, poll.max_words, list(poll.choices.all())) == ("words", 3, [])


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"max_words": 0}, "max_words"),
        ({"max_words": 6}, "max_words"),
        ({"choices": ["A", "B"]}, "choices"),
        ({"scale_max": 5}, "kind"),
    ],
)
def test_a_bad_word_cloud_is_refused_naming_the_field(fields, field):
    with pytest.raises(ValidationError) as error:
        make_cloud(**fields)
    assert field in error.value.message_dict


def test_only_a_word_cloud_takes_max_words():
    with pytest.raises(ValidationError) as error:
        services.poll_create(question="Q?", choices=["A", "B"], max_words=2)
    assert "max_words" in error.value.message_dict


def test_terms_count_by_their_normalised_form_and_show_their_most_common_spelling():
    poll = make_cloud()
    send(poll, "a", "AI", "Coffee")
    send(poll, "b", " ai ", "coffee")
    send(poll, "c", "Ａｉ", "new   york")  # full-width letters: NFKC makes them "Ai"
    send(poll, "d", "ai", "New York")

    assert cloud(poll) == [("ai", 4), ("coffee", 2), ("new york", 2)] or cloud(poll) == [
        ("ai", 4),
        ("Coffee", 2),
        ("new york", 2),
    ]
    assert dict(cloud(poll))["ai"] == 4  # "ai" typed twice, "AI", " ai " (→ "ai") and "Ai" once each
    assert term_normalised("  New \t YORK ") == "new york"


def test_a_ballot_counts_a_term_once_and_drops_blank_boxes_and_invisible_characters():
    poll = make_cloud()
    cast = send(poll, "a", "Tea", "", "tea", "t\u200bea\x00")
    assert cast.terms == ["Tea"]
    assert Ballot.objects.get(poll=poll).terms == "Tea"
    assert cloud(poll) == [("Tea", 1)]


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ([], "at least one"),
        (["", "   "], "at least one"),
        (["a", "b", "c", "d"], "at most 3"),
        (["x" * 41], "at most 40"),
    ],
)
def test_a_bad_ballot_is_refused_and_nothing_is_stored(words, message):
    poll = make_cloud()
    with pytest.raises(services.InvalidWords) as refused:
        send(poll, "a", *words)
    assert message in refused.value.message
    assert not Ballot.objects.filter(poll=poll).exists()


def test_words_and_choices_go_only_to_their_kind():
    cloud_poll = make_cloud()
    with pytest.raises(services.InvalidWords):
        services.ballot_choice_ids(poll=cloud_poll, choices=[1])
    choice_poll, _ = services.poll_create(question="Q?", choices=["A", "B"])
    choice_poll = selectors.poll_get(slug=choice_poll.slug)
    first = choice_poll.choices.all()[0].id
    with pytest.raises(services.InvalidWords):
        services.vote_cast(poll=choice_poll, choice_ids=[first], words=["A"], voter_key="v", ip_address=None)
    scale, _ = services.poll_create(question="Q?", kind="scale")
    for other in (choice_poll, selectors.poll_get(slug=scale.slug)):  # before a scale asks for its value
        with pytest.raises(services.InvalidWords, match="not words|not a word cloud"):
            services.ballot_choice_ids(poll=other, words=["A"])


@needs_redis
def test_redis_counts_the_terms_after_the_commit_as_the_record_does():
    poll = make_cloud(max_words=5)
    for voter, words in enumerate([("cats", "dogs"), ("Cats",), ("birds", "CATS", "dogs")]):
        send(poll, str(voter), *words)
    cached, record = tally_get(poll), tally_from_record(poll)
    assert cached.terms == record.terms == {"cats": 3, "dogs": 2, "birds": 1}
    assert redis_for_poll(poll).zscore(words_key(poll.id), "cats") == 3
    assert cached.total == record.total == 3


@needs_redis
def test_a_lost_tally_is_rebuilt_from_the_record_with_its_spellings():
    poll = make_cloud()
    send(poll, "a", "Paris")
    send(poll, "b", "paris")
    send(poll, "c", "Paris")
    redis_for_poll(poll).delete(*poll_tally_keys(poll.id))
    assert cloud(poll) == [("Paris", 3)]  # rebuilt on this read
    assert redis_for_poll(poll).zscore(words_key(poll.id), "paris") == 3
    send(poll, "d", "PARIS")
    assert cloud(poll) == [("Paris", 4)]


@needs_redis
def test_reconcile_repairs_drifted_terms_and_drops_phantom_ones():
    poll = make_cloud()
    send(poll, "a", "rain")
    send(poll, "b", "rain", "sun")
    client = redis_for_poll(poll)
    client.zincrby(words_key(poll.id), 7, "rain")  # drift: seven namings nobody sent
    client.zadd(words_key(poll.id), {"snow": 2})  # a term no ballot holds
    client.zrem(words_key(poll.id), "sun")  # and one lost

    assert tasks.reconcile_tallies() == 1

    assert tally_get(poll).terms == tally_from_record(poll).terms == {"rain": 2, "sun": 1}
    assert client.zscore(words_key(poll.id), "snow") is None
    assert tasks.reconcile_tallies() == 0


@needs_redis
def test_a_ballot_counted_while_the_reconciler_looks_is_not_counted_twice(monkeypatch):
    poll = make_cloud()
    tally_get(poll)
    services.vote_cast(poll=poll, choice_ids=[], words=["late"], voter_key="late", ip_address=None)
    ballot = Ballot.objects.get(poll=poll)  # committed; its increment has not reached Redis yet

    def the_increment_lands_meanwhile(seconds):
        tally_record_ballot(poll=poll, ballot_id=ballot.id, choice_ids=[], terms=["late"])

    monkeypatch.setattr(reconcile.time, "sleep", the_increment_lands_meanwhile)
    assert tasks.reconcile_tallies() == 0
    assert tally_get(poll).terms == {"late": 1}


@needs_redis
def test_voided_ballots_leave_the_cloud():
    poll = make_cloud()
    send(poll, "honest", "blue")
    for voter in range(3):
        send(poll, f"stuffer{voter}", "spam")
    Ballot.objects.filter(poll=poll, voter_key__startswith="stuffer").update(voided_at="2026-01-01T00:00:00Z")
    reconcile.tally_mark_stale(poll=poll)

    tasks.reconcile_tallies()

    assert cloud(poll) == [("blue", 1)]
    assert tally_get(poll).total == 1


def test_a_hidden_term_leaves_every_screen_in_any_spelling_and_comes_back():
    poll = make_cloud()
    send(poll, "a", "Rude", "nice")
    send(poll, "b", "rude")

    moderation.poll_hide_term(poll=selectors.poll_get(slug=poll.slug), term="RUDE ")
    assert cloud(poll) == [("nice", 1)]
    assert selectors.poll_get(slug=poll.slug).hidden_terms == ["rude"]

    moderation.poll_show_term(poll=selectors.poll_get(slug=poll.slug), term="rude")
    assert cloud(poll) == [("Rude", 2), ("nice", 1)] or cloud(poll) == [("rude", 2), ("nice", 1)]


def test_only_a_word_cloud_has_terms_to_hide():
    poll, _ = services.poll_create(question="Q?", choices=["A", "B"])
    with pytest.raises(ValidationError):
        moderation.poll_hide_term(poll=poll, term="A")


def test_the_profanity_filter_leaves_out_profane_terms_in_several_languages_while_on():
    poll = make_cloud(max_words=5)
    send(poll, "a", "shit", "merde", "Scheiße", "class", "Scunthorpe")
    assert len(cloud(poll)) == 5

    moderation.poll_set_profanity_filter(poll=selectors.poll_get(slug=poll.slug), on=True)
    assert sorted(text for text, _ in cloud(poll)) == ["Scunthorpe", "class"]

    moderation.poll_set_profanity_filter(poll=selectors.poll_get(slug=poll.slug), on=False)
    assert len(cloud(poll)) == 5


def test_the_cloud_shows_at_most_100_terms_sized_on_a_log_scale_ties_in_a_stable_order():
    poll = make_cloud()
    counted = [(f"t{n:03}", f"T{n:03}", 1) for n in range(150)] + [("big", "Big", 1000), ("mid", "Mid", 100)]
    terms = cloud_terms(poll=poll, counted=reversed(counted))
    assert len(terms) == CLOUD_MAX_TERMS
    assert [term.text for term in terms[:4]] == ["Big", "Mid", "T000", "T001"]  # ties by their normalised form
    assert terms == cloud_terms(poll=poll, counted=counted)  # the order it is read in does not matter
    sizes = {term.text: term.size for term in terms}
    assert sizes["Big"] == CLOUD_SIZES and sizes["T000"] == 1
    # 100 is two thirds of the way to 1,000 on a log scale (a linear one would draw it at the smallest size).
    assert sizes["Mid"] == 1 + round((CLOUD_SIZES - 1) * 2 / 3)


def test_the_csv_lists_each_ballots_terms_as_typed_in_columns_of_their_own():
    poll = make_cloud(max_words=2)
    send(poll, "a", "=cmd", "Tea; milk")
    send(poll, "b", "coffee")
    rows = list(csv.reader(io.StringIO("".join(selectors.ballots_csv_lines(poll=poll)))))
    assert rows[0] == ["submitted_at", "word 1", "word 2"]
    assert [row[1:] for row in rows[1:]] == [["'=cmd", "Tea; milk"], ["coffee", ""]]


@needs_redis
def test_deleting_a_word_cloud_forgets_its_terms_in_redis():
    poll = make_cloud()
    tally_get(poll)
    send(poll, "a", "gone")
    assert redis_for_poll(poll).exists(tally_key(poll.id), words_key(poll.id)) == 2
    services.poll_delete(poll=selectors.poll_get(slug=poll.slug))
    assert redis_for_poll(poll).exists(*poll_tally_keys(poll.id)) == 0
