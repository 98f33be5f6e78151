"""The polls a Locust process knows and how its users choose among them.

Attention is Zipf-like, as on any site: the k-th most popular poll draws 1/k as much as the first.
A new poll joins at the last rank (a hall: the event's own polls stay the ones people watch) or at
a random rank (a public site: any new poll may be the next one everybody votes on), and every poll
below it moves down one rank. A rank's weight never changes, so the cumulative weights only grow
at the end and a pick is one bisect, however many thousands of polls there are.
"""

import bisect
import json
import random
from dataclasses import dataclass
from pathlib import Path

# Draws before a pick that must avoid some polls (those a phone has answered) takes the exact,
# slower way: only when the excluded polls hold most of the attention, as in a hall of 10 polls.
DRAWS = 8


@dataclass
class Poll:
    slug: str
    choice_ids: list[int]
    max_choices: int = 1

    def pick_choices(self) -> list[int]:
        how_many = random.randint(1, self.max_choices)
        return random.sample(self.choice_ids, how_many)


class PollBook:
    def __init__(self, *, new_at_random_rank: bool = False) -> None:
        self.new_at_random_rank = new_at_random_rank
        self.ranked: list[Poll] = []  # most popular first
        self.cumulative: list[float] = []  # cumulative[k]: 1 + 1/2 + ... + 1/(k + 1)

    def __len__(self) -> int:
        return len(self.ranked)

    def load(self, path: Path) -> None:
        """The seeded polls (polls.json) in their order, the first the most popular: the same ranks in every
        Locust process, so the site sees one ranking."""
        for entry in json.loads(path.read_text()):
            poll = Poll(slug=entry["slug"], choice_ids=entry["choice_ids"], max_choices=entry["max_choices"])
            self.insert(poll, rank=len(self.ranked))

    def add(self, poll: Poll) -> None:
        """A poll created during the run."""
        self.insert(poll, rank=random.randint(0, len(self.ranked)) if self.new_at_random_rank else len(self.ranked))

    def insert(self, poll: Poll, *, rank: int) -> None:
        self.ranked.insert(rank, poll)  # moves pointers in C: microseconds for tens of thousands of polls
        self.cumulative.append((self.cumulative[-1] if self.cumulative else 0.0) + 1 / len(self.ranked))

    def pick(self, exclude: set[str] = frozenset()) -> Poll | None:
        """A poll by its rank's weight, among those not in `exclude`; None when every poll is."""
        if not self.ranked:
            return None
        for _ in range(DRAWS):
            at = bisect.bisect_right(self.cumulative, random.random() * self.cumulative[-1])
            poll = self.ranked[min(at, len(self.ranked) - 1)]
            if poll.slug not in exclude:
                return poll  # a draw that was not excluded: exactly the weights among the rest
        rest = [(poll, 1 / (rank + 1)) for rank, poll in enumerate(self.ranked) if poll.slug not in exclude]
        if not rest:
            return None
        polls, weights = zip(*rest, strict=True)
        return random.choices(polls, weights)[0]
