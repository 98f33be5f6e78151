"""A word cloud's owner keeps it clean: hides terms, and switches the profanity filter on or off.

Both change what screens show, never the ballots (polls/words.py). A change is saved on the poll, whose
cached copy every process drops at once (polls/poll_cache.py), and the poll is marked changed, so the
broadcaster pushes the cloud without the term within a quarter of a second.
"""

from django.core.exceptions import ValidationError

from polls.models import TERM_MAX_LENGTH, Poll
from polls.tallies.changes import tally_mark_changed
from polls.words import term_normalised

# An owner hides a handful of terms; the list is read with the poll on every push.
HIDDEN_TERMS_MAX = 500


def poll_hide_term(*, poll: Poll, term: str) -> Poll:
    """Leaves the term (any spelling of it) out of every screen, the API and the cloud's pushes."""
    normalised = _word_cloud_term(poll, term)
    if normalised not in poll.hidden_terms:
        if len(poll.hidden_terms) >= HIDDEN_TERMS_MAX:
            raise ValidationError(f"At most {HIDDEN_TERMS_MAX} terms can be hidden: show some again first.")
        poll.hidden_terms = [*poll.hidden_terms, normalised]
        _saved(poll, "hidden_terms")
    return poll


def poll_show_term(*, poll: Poll, term: str) -> Poll:
    """Undoes `poll_hide_term`: the term is shown again with every ballot that named it."""
    normalised = _word_cloud_term(poll, term)
    if normalised in poll.hidden_terms:
        poll.hidden_terms = [hidden for hidden in poll.hidden_terms if hidden != normalised]
        _saved(poll, "hidden_terms")
    return poll


def poll_set_profanity_filter(*, poll: Poll, on: bool) -> Poll:
    if not poll.is_words:
        raise ValidationError("Only a word cloud has a profanity filter.")
    if poll.profanity_filter != on:
        poll.profanity_filter = on
        _saved(poll, "profanity_filter")
    return poll


def _word_cloud_term(poll: Poll, term: str) -> str:
    if not poll.is_words:
        raise ValidationError("Only a word cloud's terms can be hidden.")
    normalised = term_normalised(term or "")
    if not normalised or len(normalised) > TERM_MAX_LENGTH * 2:  # NFKC may lengthen a term a little
        raise ValidationError("Name the term to hide or show.")
    return normalised


def _saved(poll: Poll, field: str) -> None:
    poll.save(update_fields=[field])
    tally_mark_changed(poll=poll)
