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


# What the audience types into a word cloud: a few dozen words, the first far more often than the
# last (Zipf-like again), each in one of the spellings people type, which count as one term.
VOCABULARY = (
    "coffee", "focus", "music", "sleep", "friends", "code", "rain", "travel", "pizza", "books",
    "ideas", "energy", "calm", "team", "learning", "sunshine", "family", "deadlines", "tea", "new york",
    "open source", "databases", "latency", "kindness", "curiosity", "walks", "bread", "cats", "dogs", "jazz",
)  # fmt: skip
_VOCABULARY_WEIGHTS = [1 / rank for rank in range(1, len(VOCABULARY) + 1)]


def spelled(word: str) -> str:
    """The word as someone types it: as it is, capitalised, in capitals, or with stray spaces."""
    return random.choice((word, word.capitalize(), word.upper(), f"  {word} "))


@dataclass
class Poll:
    slug: str
    choice_ids: list[int]  # a rating's values are its choices, in order
    max_choices: int = 1
    kind: str = "choice"  # "scale" or "words" (DESIGN.md, "Question kinds")
    max_words: int = 0  # a word cloud's
    scale_min: int = 1  # a rating's lowest value

    def pick_choices(self) -> list[int]:
        how_many = random.randint(1, self.max_choices)
        return random.sample(self.choice_ids, how_many)

    def pick_words(self) -> list[str]:
        """1 to `max_words` different words, each spelled as someone might type it."""
        words: list[str] = []
        for _ in range(random.randint(1, self.max_words)):
            word = random.choices(VOCABULARY, _VOCABULARY_WEIGHTS)[0]
            if word not in words:
                words.append(word)
        return [spelled(word) for word in words]

    def form_fields(self) -> list[tuple[str, str]]:
        """The answer as the vote form posts it: ticked choices (a rating's value is one), or typed words."""
        if self.kind == "words":
            return [("words", word) for word in self.pick_words()]
        return [("choice", str(choice)) for choice in self.pick_choices()]

    def api_answer(self) -> dict:
        """The answer as `POST /api/votes/` takes it: `choices`, a rating's `value`, or `words`."""
        if self.kind == "words":
            return {"words": self.pick_words()}
        if self.kind == "scale":
            return {"value": self.scale_min + random.randrange(len(self.choice_ids))}
        return {"choices": self.pick_choices()}

    @classmethod
    def from_entry(cls, entry: dict) -> "Poll":
        """A poll as the seeding wrote it (polls.json, event.json)."""
        return cls(
            slug=entry["slug"],
            choice_ids=entry["choice_ids"],
            max_choices=entry.get("max_choices", 1),
            kind=entry.get("kind", "choice"),
            max_words=entry.get("max_words") or 0,
            scale_min=entry.get("scale_min") or 1,
        )


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
            self.insert(Poll.from_entry(entry), rank=len(self.ranked))

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
