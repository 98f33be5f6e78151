"""Polls loaded from the record with their choices, and the polls that took ballots lately: the reads
the caches and reconciliation (`polls.poll_cache`, `polls.tallies`) need. They sit below `selectors`,
which reads tallies, so that no module of `polls` imports another that imports it back
(`.importlinter`); `selectors` offers them to the doors under the same names."""

from collections.abc import Iterable
from datetime import datetime

from polls.models import Ballot, Choice, Poll


def with_choices(poll: Poll, choices: Iterable[Choice]) -> Poll:
    """Sets what `poll.choices.all()` returns, as `prefetch_related("choices")` would, but with
    nothing pointing back at the poll (Django's prefetch points each choice and the queryset at
    it). Such a back-reference makes every poll a reference cycle, memory that only Python's
    infrequent full collection frees: loaded by the hundred every few seconds (the reconciler,
    the broadcaster), those polls grew a process steadily (make soak)."""
    queryset = Choice.objects.filter(poll_id=poll.id)
    queryset._result_cache = list(choices)
    queryset._prefetch_done = True
    poll._prefetched_objects_cache = {"choices": queryset}
    return poll


def polls_with_choices(*, poll_ids: Iterable[int]) -> list[Poll]:
    """The polls that still exist among `poll_ids`, with their choices loaded (two queries)."""
    polls = list(Poll.objects.filter(id__in=list(poll_ids)))
    choices_by_poll: dict[int, list[Choice]] = {poll.id: [] for poll in polls}
    for choice in Choice.objects.filter(poll__in=polls):  # in `position` order (Choice.Meta)
        choices_by_poll[choice.poll_id].append(choice)
    return [with_choices(poll, choices_by_poll[poll.id]) for poll in polls]


def poll_ids_with_ballots_since(*, since: datetime) -> set[int]:
    """Polls that took a ballot stamped at `since` or later: one range scan of the ballots' BRIN
    index on their time, so its cost follows the recent votes, not the number of polls."""
    return set(Ballot.objects.filter(submitted_at__gte=since).values_list("poll_id", flat=True).distinct())
