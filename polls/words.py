"""A word cloud's terms: what a voter may send, how terms are counted as one, which are shown, and how big.

A term is counted by its normalised form (NFKC, case-folded, trimmed, inner whitespace collapsed:
DESIGN.md, "Question kinds"), so "AI", " ai " and "Ａｉ" are one term; the cloud shows it in its most
common spelling, which the tally keeps beside the counts (polls/tallies/counts.py). The record keeps
each ballot's terms as typed (`Ballot.terms`), so the counts can always be rebuilt from it.

The owner can hide terms (moderation) and switch on a profanity filter. Both act when results are
read, never on the ballots: hiding is undone as easily as it is done, and a filter switched on later
also covers the terms already counted.
"""

import math
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

from glin_profanity import Filter

from polls.models import TERM_MAX_LENGTH, Poll

# At most this many terms are shown: beyond that a cloud stops being readable (issue 18).
CLOUD_MAX_TERMS = 100
# Font sizes, as classes of the stylesheet (`cloud-s1` … `cloud-s8`): the CSP forbids inline styles.
CLOUD_SIZES = 8
# The word lists the profanity filter checks terms against: glin-profanity's dictionaries for these
# languages (the package's own list of 24, all of them). docs/api.md names them for owners.
PROFANITY_LANGUAGES = (
    "arabic", "chinese", "czech", "danish", "dutch", "english", "esperanto", "finnish", "french", "german",
    "hindi", "hungarian", "italian", "japanese", "korean", "norwegian", "persian", "polish", "portuguese",
    "russian", "spanish", "swedish", "thai", "turkish",
)  # fmt: skip
# Characters no term keeps: controls (PostgreSQL refuses NUL), format characters (invisible joiners
# and direction marks would make two identical-looking terms differ) and lone surrogates.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})


class InvalidTerms(ValueError):
    """A ballot's terms break the rules; the message says which, to the voter."""


def term_normalised(term: str) -> str:
    """The form a term is counted by."""
    return " ".join(unicodedata.normalize("NFKC", term).casefold().split())


def term_typed(term: str) -> str:
    """A term as it is kept and shown: trimmed, inner whitespace collapsed, invisible characters dropped."""
    visible = "".join(char for char in term if unicodedata.category(char) not in _DROPPED_CATEGORIES or char in "\t\n")
    return " ".join(visible.split())


def ballot_terms(*, poll: Poll, words: object) -> list[str]:
    """The terms of one voter's ballot, as typed, from what the vote sent; raises `InvalidTerms`.

    Empty entries (a blank box of the form) are skipped. Two entries that count as one term are kept
    once: a voter cannot weigh a term twice by typing it twice.
    """
    if not isinstance(words, list | tuple) or not all(isinstance(word, str) for word in words):
        raise InvalidTerms(f"Send 'words' as a list of 1 to {poll.max_words} terms.")
    typed = [term for term in map(term_typed, words) if term]
    if not typed:
        raise InvalidTerms("Type at least one word.")
    if any(len(term) > TERM_MAX_LENGTH for term in typed):
        raise InvalidTerms(f"Each word or phrase can be at most {TERM_MAX_LENGTH} characters.")
    distinct = list({term_normalised(term): term for term in reversed(typed)}.values())[::-1]
    if len(distinct) > poll.max_words:
        raise InvalidTerms(f"Send at most {poll.max_words} word{'s' if poll.max_words > 1 else ''}.")
    return distinct


def terms_of_ballot(stored: str) -> list[str]:
    """A ballot's terms as typed, from `Ballot.terms`."""
    return stored.split("\n") if stored else []


def terms_stored(terms: Sequence[str]) -> str:
    return "\n".join(terms)


@cache
def _profanity_filter() -> Filter:
    # Whole words only: "class" and "Scunthorpe" are not profane.
    return Filter({"languages": list(PROFANITY_LANGUAGES), "word_boundaries": True})


@lru_cache(maxsize=65_536)
def term_is_profane(normalised: str) -> bool:
    """Whether the filter's word lists hold the term (or a word of it). Cached: a cloud's terms are
    read again on every push."""
    return _profanity_filter().is_profane(normalised)


def term_shown(*, poll: Poll, normalised: str, spelling: str) -> bool:
    """Whether a counted term may appear on screens: not hidden by the owner, nor filtered as profane.

    The filter looks at the spelling shown too: case-folding turns "ß" into "ss", and the word lists
    hold words as they are written ("scheiße")."""
    if normalised in poll.hidden_terms:
        return False
    return not (poll.profanity_filter and (term_is_profane(normalised) or term_is_profane(spelling.lower())))


@dataclass(frozen=True)
class CloudTerm:
    text: str  # the most common spelling
    normalised: str
    count: int
    size: int  # 1 (smallest) to CLOUD_SIZES


def cloud_terms(*, poll: Poll, counted: Iterable[tuple[str, str, int]]) -> list[CloudTerm]:
    """The cloud: at most `CLOUD_MAX_TERMS` of the `counted` terms (normalised, spelling, count) that may
    be shown, most frequent first, ties in the order of their normalised form so that they keep their
    places from one push to the next.

    Sizes follow the logarithm of the count, relative to the most frequent term: a term counted 1,000
    times next to one counted 10 must not shrink the second to nothing. Terms counted alike are drawn
    alike, at the smallest size: how large the whole cloud is drawn is the page's to choose.
    """
    shown = [(normalised, spelling, count) for normalised, spelling, count in counted if count > 0]
    shown = [term for term in shown if term_shown(poll=poll, normalised=term[0], spelling=term[1])]
    shown.sort(key=lambda term: (-term[2], term[0]))
    shown = shown[:CLOUD_MAX_TERMS]
    top = math.log(shown[0][2]) if shown else 0.0
    return [
        CloudTerm(
            text=spelling,
            normalised=normalised,
            count=count,
            size=1 + round((CLOUD_SIZES - 1) * math.log(count) / top) if top else 1,
        )
        for normalised, spelling, count in shown
    ]
