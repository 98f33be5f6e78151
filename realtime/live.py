"""What a live viewer is sent: the live region of a results page, rendered for an audience.

Viewers are split into audiences by what they may see, each with its own channel-layer group,
so a push never needs rendering per client and never reaches someone who may not see it:
the owner always sees results; a browser that voted sees them in `after_vote` polls; the
public sees what the poll's visibility allows. The broadcaster renders the results once per
poll per tick and sends each group either those results or the "hidden" notice.
"""

from dataclasses import dataclass
from enum import StrEnum

from django.template.loader import render_to_string

from polls import selectors
from polls.models import Poll


class Audience(StrEnum):
    OWNER = "owner"
    VOTED = "voted"
    PUBLIC = "public"


@dataclass(frozen=True)
class LiveView:
    """The live region's HTML and the tally version it shows (None: results hidden, nothing sent about them)."""

    html: str
    version: int | None


def audience_group(poll: Poll, audience: Audience) -> str:
    return f"{poll.group_name}.{audience}"


def audience_may_see_results(poll: Poll, audience: Audience) -> bool:
    return selectors.results_visible(
        poll=poll, has_voted=audience is Audience.VOTED, is_owner=audience is Audience.OWNER
    )


def live_view(*, poll: Poll, audience: Audience) -> LiveView:
    """The snapshot one connecting viewer gets."""
    seen = selectors.poll_results_for_viewer(
        poll=poll, has_voted=audience is Audience.VOTED, is_owner=audience is Audience.OWNER
    )
    if seen.results is None:
        return _hidden_view(poll)
    return _results_view(poll, seen.results)


def live_views(*, poll: Poll, results: selectors.PollResults) -> dict[Audience, LiveView]:
    """Every audience's view of `poll`, rendering the results (and the notice) at most once each."""
    visible = {audience: audience_may_see_results(poll, audience) for audience in Audience}
    shown = _results_view(poll, results)  # the owner always sees results
    hidden = _hidden_view(poll) if not all(visible.values()) else None
    return {audience: shown if visible[audience] else hidden for audience in Audience}


def _results_view(poll: Poll, results: selectors.PollResults) -> LiveView:
    return LiveView(html=_render(poll, results=results, hidden_reason=None), version=results.version)


def _hidden_view(poll: Poll) -> LiveView:
    reason = selectors.results_hidden_reason(poll=poll)
    return LiveView(html=_render(poll, results=None, hidden_reason=reason), version=None)


def _render(poll: Poll, *, results: selectors.PollResults | None, hidden_reason: str | None) -> str:
    # The region's content as the pages show it, in the wrapper the htmx ws extension swaps in by id.
    return render_to_string(
        "partials/live_region.html#push", {"poll": poll, "results": results, "hidden_reason": hidden_reason}
    )
