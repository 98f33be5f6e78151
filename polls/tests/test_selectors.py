"""The read rules: who may see results, what results say, and what the CSV export holds."""

import csv
import gc
import io
import weakref
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from polls import selectors, services
from polls.models import Ballot, Choice, Poll

pytestmark = pytest.mark.django_db


def make_poll(**kwargs) -> Poll:
    kwargs.setdefault("question", "Best fruit?")
    kwargs.setdefault("choices", ["Apple", "Pear", "Plum"])
    poll, _token = services.poll_create(**kwargs)
    return selectors.poll_get(slug=poll.slug)


def cast(poll: Poll, *texts: str, voter: str = "voter-1", ip: str = "203.0.113.7") -> None:
    ids = [choice.id for choice in poll.choices.all() if choice.text in texts]
    services.vote_cast(poll=poll, choice_ids=ids, voter_key=voter, ip_address=ip)


def export(poll: Poll) -> list[list[str]]:
    return list(csv.reader(io.StringIO("".join(selectors.ballots_csv_lines(poll=poll)))))


# --- poll_get ------------------------------------------------------------------------------


@pytest.mark.parametrize("slug", ["nosuchpoll", "", "a" * 17, "abc\x00def", "ABCDEFGH", "../etc", "1"])
def test_an_unknown_or_malformed_slug_is_simply_not_found(slug):
    make_poll()
    with pytest.raises(Poll.DoesNotExist):
        selectors.poll_get(slug=slug)


def test_the_owner_poll_needs_the_right_token():
    poll, token = services.poll_create(question="Q?", choices=["a", "b"])
    assert selectors.poll_get_for_owner(slug=poll.slug, token=token).pk == poll.pk
    for wrong in ("", token[:-1], token + "a", "x" * 43):
        with pytest.raises(Poll.DoesNotExist):
            selectors.poll_get_for_owner(slug=poll.slug, token=wrong)


# --- polls_with_choices --------------------------------------------------------------------


def test_polls_with_choices_loads_each_polls_own_choices_in_order_in_two_queries(django_assert_num_queries):
    first = make_poll(choices=["Apple", "Pear", "Plum"])
    second = make_poll(question="Best colour?", choices=["Red", "Blue"])
    with django_assert_num_queries(2):
        polls = {poll.id: poll for poll in selectors.polls_with_choices(poll_ids=[first.id, second.id, 0])}
        texts = {poll_id: [choice.text for choice in poll.choices.all()] for poll_id, poll in polls.items()}
    assert texts == {first.id: ["Apple", "Pear", "Plum"], second.id: ["Red", "Blue"]}


def test_polls_with_choices_are_freed_without_the_cycle_collector():
    # The reconciler and the broadcaster load hundreds of polls every few seconds; polls that
    # form reference cycles wait for Python's rare full collection and grow the process.
    poll = make_poll()
    gc.collect()
    gc.disable()
    try:
        loaded = selectors.polls_with_choices(poll_ids=[poll.id])
        assert len(loaded[0].choices.all()) == 3
        freed = weakref.ref(loaded[0])
        del loaded
        assert freed() is None, "a poll of polls_with_choices is still alive: it is part of a reference cycle"
    finally:
        gc.enable()


# --- results -------------------------------------------------------------------------------


def test_results_count_ballots_and_selections_with_rounded_percentages():
    poll = make_poll()
    cast(poll, "Apple", voter="a")
    cast(poll, "Apple", voter="b")
    cast(poll, "Pear", voter="c")
    results = selectors.poll_results(poll=poll)
    assert results.total == 3
    rows = [(c.text, c.votes, c.percent) for c in results.choices]
    assert rows == [("Apple", 2, 67), ("Pear", 1, 33), ("Plum", 0, 0)]
    assert results.leader_votes == 2
    assert not results.closed


def test_results_of_a_poll_without_votes_are_all_zero():
    results = selectors.poll_results(poll=make_poll())
    assert results.total == 0
    assert [c.percent for c in results.choices] == [0, 0, 0]


def test_the_results_version_grows_with_each_counted_ballot(django_capture_on_commit_callbacks):
    poll = make_poll()
    before = selectors.poll_results(poll=poll).version
    # The cached tally (Redis, when configured) is updated once the vote's transaction commits.
    with django_capture_on_commit_callbacks(execute=True):
        cast(poll, "Apple", voter="a")
    after_one = selectors.poll_results(poll=poll).version
    with django_capture_on_commit_callbacks(execute=True):
        cast(poll, "Pear", voter="b")
    assert before < after_one < selectors.poll_results(poll=poll).version


def test_results_say_closed_when_closed_by_hand_past_the_deadline_or_not_yet_open():
    by_hand = make_poll()
    services.poll_close(poll=by_hand)
    past = make_poll(closes_at=timezone.now() + timedelta(hours=1))
    Poll.objects.filter(pk=past.pk).update(closes_at=timezone.now() - timedelta(seconds=1))
    not_yet = make_poll(opens_at=timezone.now() + timedelta(hours=1))
    for poll in (by_hand, selectors.poll_get(slug=past.slug), not_yet):
        assert selectors.poll_results(poll=poll).closed


def test_voter_has_voted_knows_this_browser_and_nobody_else():
    poll = make_poll()
    cast(poll, "Apple", voter="me")
    assert selectors.voter_has_voted(poll=poll, voter_key="me")
    assert not selectors.voter_has_voted(poll=poll, voter_key="you")
    assert not selectors.voter_has_voted(poll=poll, voter_key=None)


# --- visibility ----------------------------------------------------------------------------


def test_always_shows_results_to_everyone():
    poll = make_poll(results_visibility="always")
    assert selectors.results_visible(poll=poll, has_voted=False)


def test_after_vote_shows_results_only_to_voters_while_open():
    poll = make_poll(results_visibility="after_vote")
    assert not selectors.results_visible(poll=poll, has_voted=False)
    assert selectors.results_visible(poll=poll, has_voted=True)
    assert "once you have voted" in selectors.results_hidden_reason(poll=poll)


def test_after_vote_shows_results_to_everyone_once_closed():
    poll = make_poll(results_visibility="after_vote")
    services.poll_close(poll=poll)
    assert selectors.results_visible(poll=poll, has_voted=False)


def test_after_close_hides_results_from_voters_until_the_poll_closes():
    poll = make_poll(results_visibility="after_close")
    assert not selectors.results_visible(poll=poll, has_voted=True)
    assert "when the poll closes" in selectors.results_hidden_reason(poll=poll)
    services.poll_close(poll=poll)
    assert selectors.results_visible(poll=poll, has_voted=False)


def test_after_close_shows_results_once_the_deadline_passes():
    poll = make_poll(results_visibility="after_close", closes_at=timezone.now() + timedelta(hours=1))
    assert not selectors.results_visible(poll=poll, has_voted=False)
    poll.closes_at = timezone.now() - timedelta(seconds=1)
    assert selectors.results_visible(poll=poll, has_voted=False)


@pytest.mark.parametrize("visibility", ["always", "after_vote", "after_close"])
def test_the_owner_always_sees_results(visibility):
    poll = make_poll(results_visibility=visibility)
    assert selectors.results_visible(poll=poll, has_voted=False, is_owner=True)


def test_a_viewer_of_an_open_after_vote_poll_sees_results_once_the_record_has_their_ballot(
    django_assert_num_queries,
):
    created = make_poll(results_visibility="after_vote")
    cast(created, "Apple", voter="me")
    poll = selectors.poll_get(slug=created.slug)  # with its choices, as every door reads it
    selectors.poll_results(poll=poll)  # its tally, rebuilt from the record if Redis lacks it

    with django_assert_num_queries(1):  # whether "me" voted: asked of the record
        seen = selectors.poll_results_for_viewer(poll=poll, voter_key="me")
    assert (seen.results.total, seen.hidden_reason) == (1, None)

    hidden = selectors.poll_results_for_viewer(poll=poll, voter_key="you")
    assert hidden.results is None and "once you have voted" in hidden.hidden_reason


@pytest.mark.parametrize("visibility", ["always", "after_close"])
def test_a_viewer_is_looked_up_only_when_their_vote_would_change_what_they_see(visibility, django_assert_num_queries):
    created = make_poll(results_visibility=visibility)
    cast(created, "Apple", voter="me")
    poll = selectors.poll_get(slug=created.slug)
    selectors.poll_results(poll=poll)
    with django_assert_num_queries(0):
        seen = selectors.poll_results_for_viewer(poll=poll, voter_key="me")
    assert (seen.results is None) == (visibility == "after_close")


# --- CSV export ----------------------------------------------------------------------------


def test_the_export_has_a_header_then_one_row_per_ballot_in_time_order():
    poll = make_poll(max_choices=3)
    cast(poll, "Pear", voter="a")
    cast(poll, "Apple", "Plum", voter="b")
    rows = export(poll)
    assert rows[0] == ["submitted_at", "choices"]
    assert [row[1] for row in rows[1:]] == ["Pear", "Apple; Plum"]


def test_the_export_writes_times_in_utc_iso_8601():
    poll = make_poll()
    cast(poll, "Apple")
    moment = datetime(2026, 3, 1, 12, 30, 5, tzinfo=UTC)
    Ballot.objects.filter(poll=poll).update(submitted_at=moment)
    (when, _choices) = export(poll)[1]
    assert when == "2026-03-01T12:30:05Z"
    assert datetime.fromisoformat(when) == moment


def test_the_export_neutralises_cells_a_spreadsheet_would_run():
    poll = make_poll(choices=['=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "Plain"], max_choices=5)
    for i, text in enumerate(['=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "Plain"]):
        cast(poll, text, voter=f"v{i}")
    cells = [row[1] for row in export(poll)[1:]]
    assert cells == ['\'=HYPERLINK("http://x")', "'+1", "'-2", "'@SUM(A1)", "Plain"]


def test_the_export_neutralises_a_leading_tab_or_carriage_return_too():
    # The services strip choice texts, but rows written before that (or by hand) may still start so.
    poll = make_poll(choices=["Apple", "Pear"], max_choices=2)
    Choice.objects.filter(poll=poll, text="Apple").update(text="\t=cmd")
    Choice.objects.filter(poll=poll, text="Pear").update(text="\r=cmd")
    poll = Poll.objects.prefetch_related("choices").get(pk=poll.pk)
    for i, choice in enumerate(poll.choices.all()):
        services.vote_cast(poll=poll, choice_ids=[choice.id], voter_key=f"v{i}", ip_address=None)
    assert sorted(row[1] for row in export(poll)[1:]) == ["'\t=cmd", "'\r=cmd"]


def test_the_export_holds_no_voter_keys_or_address_hashes():
    poll = make_poll(dedupe="ip")
    cast(poll, "Apple", voter="secret-voter-key", ip="198.51.100.23")
    text = "".join(selectors.ballots_csv_lines(poll=poll))
    ballot = Ballot.objects.get(poll=poll)
    assert "secret-voter-key" not in text
    assert ballot.ip_hash and ballot.ip_hash not in text
    assert "198.51.100.23" not in text
    assert len(export(poll)[1]) == 2


def test_the_export_of_another_poll_is_not_mixed_in():
    poll, other = make_poll(), make_poll(question="Other?")
    cast(poll, "Apple")
    cast(other, "Pear")
    assert [row[1] for row in export(poll)[1:]] == ["Apple"]
