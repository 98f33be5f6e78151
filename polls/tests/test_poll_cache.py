"""The per-process poll cache: a change of a poll is seen by the next lookup, in every process."""

import json
import os
import subprocess
import sys

import pytest
import redis
from django.conf import settings
from django.db import connection

from polls import poll_cache, selectors, services
from polls.models import Poll
from polls.redis_client import redis_for_poll

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not settings.REDIS_URL, reason="polls are cached only when Redis holds their revisions"),
]


def make_poll():
    poll, _token = services.poll_create(question="Cached?", choices=["Yes", "No"])
    return poll


def close_behind_the_cache(poll):
    """What another process closing the poll looks like from here: the row changes, then the revision."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE polls_poll SET closed = true WHERE id = %s", [poll.id])


def test_a_lookup_is_served_from_the_cache_while_the_poll_is_unchanged(django_assert_num_queries):
    poll = make_poll()
    selectors.poll_get(slug=poll.slug)
    with django_assert_num_queries(0):
        cached = selectors.poll_get(slug=poll.slug)
        assert [choice.text for choice in cached.choices.all()] == ["Yes", "No"]


def test_a_poll_closed_by_another_process_is_closed_at_the_next_lookup():
    poll = make_poll()
    assert selectors.poll_get(slug=poll.slug).is_open()
    close_behind_the_cache(poll)
    redis_for_poll(poll).incr(f"pollrev:{poll.slug}")  # what that process's poll_close does after its commit

    assert not selectors.poll_get(slug=poll.slug).is_open()


def test_closing_through_the_service_bumps_the_revision_other_processes_check():
    poll = selectors.poll_get(slug=make_poll().slug)
    before = redis_for_poll(poll).get(f"pollrev:{poll.slug}")
    services.poll_close(poll=poll)
    assert redis_for_poll(poll).get(f"pollrev:{poll.slug}") != before
    with pytest.raises(services.PollClosed):
        services.vote_cast(poll=selectors.poll_get(slug=poll.slug), choice_ids=[], voter_key="v", ip_address=None)


def test_a_queryset_update_invalidates_the_cache_too():
    poll = make_poll()
    selectors.poll_get(slug=poll.slug)
    Poll.objects.filter(pk=poll.pk).update(closed=True)
    assert not selectors.poll_get(slug=poll.slug).is_open()


def test_each_caller_gets_its_own_copy():
    poll = make_poll()
    first = selectors.poll_get(slug=poll.slug)
    first.closed = True  # a service changing its poll before saving it
    assert selectors.poll_get(slug=poll.slug).closed is False


def _public_results(slug: str):
    """The results API's read: the poll and its tally in one lookup, then what a stranger may see."""
    poll, cached_tally = selectors.poll_get_with_tally(slug=slug)
    return poll, selectors.poll_results_for_viewer(poll=poll, cached_tally=cached_tally).results


def test_public_results_of_a_cached_poll_come_with_its_lookup_and_follow_new_votes(django_assert_num_queries):
    poll = make_poll()
    yes = poll.choices.first()
    _public_results(poll.slug)  # caches the poll and builds the tally
    services.vote_cast(poll=selectors.poll_get(slug=poll.slug), choice_ids=[yes.id], voter_key="a", ip_address=None)

    with django_assert_num_queries(0):
        cached, results = _public_results(poll.slug)

    assert cached.slug == poll.slug
    assert (results.total, [choice.votes for choice in results.choices]) == (1, [1, 0])


def test_results_shown_only_to_voters_are_not_read_with_the_lookup():
    poll, _token = services.poll_create(question="Secret?", choices=["Yes", "No"], results_visibility="after_vote")
    _public_results(poll.slug)

    _cached, results = _public_results(poll.slug)

    assert results is None


def test_this_process_keeps_polls_within_its_memory_budget_least_recently_used_out(monkeypatch):
    monkeypatch.setattr(poll_cache, "_local", poll_cache._LocalPolls())
    polls = [make_poll() for _ in range(4)]
    for poll in polls:
        selectors.poll_get(slug=poll.slug)
    one_poll = poll_cache._local.size // 4
    monkeypatch.setattr(poll_cache, "MAX_BYTES", 3 * one_poll + one_poll // 2)
    selectors.poll_get(slug=polls[0].slug)  # used again: now the most recent

    fifth = make_poll()
    selectors.poll_get(slug=fifth.slug)

    assert poll_cache._local.slugs() == [polls[2].slug, polls[3].slug, polls[0].slug, fifth.slug][-3:]
    assert poll_cache._local.size <= poll_cache.MAX_BYTES


def test_a_poll_another_process_served_is_read_from_the_shared_copy_without_the_database(
    monkeypatch, django_assert_num_queries
):
    poll = make_poll()
    selectors.poll_get(slug=poll.slug)
    monkeypatch.setattr(poll_cache, "_local", poll_cache._LocalPolls())  # this process never saw it

    with django_assert_num_queries(0):
        found = selectors.poll_get(slug=poll.slug)
    assert (found.id, found.question, [choice.text for choice in found.choices.all()]) == (
        poll.id,
        "Cached?",
        ["Yes", "No"],
    )
    assert found.created_at == Poll.objects.get(pk=poll.pk).created_at


def test_a_new_poll_is_found_without_the_database_from_its_first_lookup(monkeypatch, django_assert_num_queries):
    monkeypatch.setattr(poll_cache, "_local", poll_cache._LocalPolls())
    poll = make_poll()  # committed: its copy was stored after the commit

    with django_assert_num_queries(0):
        found = selectors.poll_get(slug=poll.slug)
    assert [choice.id for choice in found.choices.all()] == [choice.id for choice in poll.choices.all()]


def test_a_shared_copy_older_than_the_revision_is_not_used(monkeypatch):
    poll = make_poll()
    selectors.poll_get(slug=poll.slug)
    close_behind_the_cache(poll)
    redis_for_poll(poll).incr(f"pollrev:{poll.slug}")
    monkeypatch.setattr(poll_cache, "_local", poll_cache._LocalPolls())

    assert not selectors.poll_get(slug=poll.slug).is_open()


def test_a_cold_polls_public_results_take_one_redis_round_trip_and_no_query(monkeypatch, django_assert_num_queries):
    poll = make_poll()
    yes = poll.choices.first()
    services.vote_cast(poll=selectors.poll_get(slug=poll.slug), choice_ids=[yes.id], voter_key="a", ip_address=None)
    selectors.poll_results(poll=poll)  # the tally exists
    monkeypatch.setattr(poll_cache, "_local", poll_cache._LocalPolls())
    round_trips = []
    send = redis.connection.Connection.send_packed_command

    def counted(connection, *args, **kwargs):
        round_trips.append(args)
        return send(connection, *args, **kwargs)

    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counted)
    with django_assert_num_queries(0):
        _cached, results = _public_results(poll.slug)

    assert len(round_trips) == 1
    assert (results.total, [choice.votes for choice in results.choices]) == (1, [1, 0])


def test_a_shared_copy_written_before_a_poll_field_was_added_is_a_miss_not_an_error():
    # Copies live an hour: right after a deploy that adds a field to Poll, the old ones are still there.
    poll = make_poll()
    poll_id, revision, body = redis_for_poll(poll).get(f"pollcopy:{poll.slug}").split("|", 2)
    row, choices = json.loads(body)
    redis_for_poll(poll).set(f"pollcopy:{poll.slug}", f"{poll_id}|{revision}|{json.dumps([row[:-1], choices])}")
    assert selectors.poll_get(slug=poll.slug).question == "Cached?"


def test_every_process_forgets_a_changed_poll_whatever_it_imported_first():
    # A fresh interpreter that only sets Django up, as a Celery worker or a management command does.
    probe = (
        "import django; django.setup();"
        "from django.db.models.signals import post_delete, post_save;"
        "from polls.models import Poll, polls_updated;"
        "print(all(signal.has_listeners(Poll) for signal in (post_save, post_delete, polls_updated)))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "crowdtick.settings"}
    answer = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert answer.stdout.strip() == "True", answer.stderr
