"""The owner's moderation of a word cloud: hide and show terms, switch the profanity filter.

The rules are `polls.moderation`'s. Plain forms without JavaScript (the owner page again, at the
moderation card, with what could not be done); with HTMX the card alone, which also refreshes itself
while the cloud fills.
"""

from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from polls import moderation, selectors
from polls.models import Poll
from web.forms import WordModerationForm
from web.views import owned_poll_or_404, owner_page

_ACTIONS = {
    "hide": lambda poll, term: moderation.poll_hide_term(poll=poll, term=term),
    "show": lambda poll, term: moderation.poll_show_term(poll=poll, term=term),
    "filter_on": lambda poll, term: moderation.poll_set_profanity_filter(poll=poll, on=True),
    "filter_off": lambda poll, term: moderation.poll_set_profanity_filter(poll=poll, on=False),
}


@require_http_methods(["GET", "HEAD", "POST"])
def manage_words(request: HttpRequest, slug: str, token: str) -> HttpResponse:
    poll = owned_poll_or_404(slug, token)
    if not poll.is_words:
        raise Http404("This poll is not a word cloud.")
    error, status = None, 200
    if request.method == "POST":
        form = WordModerationForm(request.POST)
        try:
            if not form.is_valid():
                raise ValidationError("That change could not be read: reload the owner page and try again.")
            poll = _ACTIONS[form.cleaned_data["action"]](poll, form.cleaned_data["term"])
        except ValidationError as invalid:
            error, status = invalid.messages[0], 400
    if not request.htmx:
        if error is None:
            return redirect(reverse("web:manage", args=[slug, token]) + "#word-moderation")
        return owner_page(request, poll, token, status=status, moderation_error=error)
    context = word_moderation_context(poll) | {"token": token, "moderation_error": error}
    return TemplateResponse(request, "partials/word_moderation.html", context, status=status)


def word_moderation_context(poll: Poll) -> dict:
    """What the moderation card lists: the terms on screen now (the owner's hide buttons) and those hidden."""
    return {"poll": poll, "cloud": selectors.poll_results(poll=poll).cloud or [], "hidden_terms": poll.hidden_terms}
