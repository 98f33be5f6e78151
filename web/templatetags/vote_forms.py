"""What the vote form's template cannot compute itself."""

from django import template

from polls.models import TERM_MAX_LENGTH, Poll

register = template.Library()


@register.simple_tag
def word_boxes(poll: Poll, typed: list[str] | None) -> list[str]:
    """A word cloud's text boxes, one per word its voter may send, holding what was typed before an error."""
    typed = list(typed or [])[: poll.max_words or 0]
    return typed + [""] * ((poll.max_words or 0) - len(typed))


@register.simple_tag
def term_max_length() -> int:
    return TERM_MAX_LENGTH
