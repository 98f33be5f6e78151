"""What an event's screens are sent: the phones' fragment, the big screen's and the presenter's.

Each is rendered once per change of the event (by the broadcaster, or for one viewer's snapshot) and
sent to the event's group for that screen. Phones differ only by what they answered: a phone that
answered the active question is sent `answered_html`, whose `data-mine=""` its socket fills in with
the positions it picked (`phone_html`): string work, no rendering per phone. The stylesheet marks
those positions in the results ("your choice").
"""

from dataclasses import dataclass
from enum import StrEnum
from functools import partial

from django.template.loader import render_to_string

from polls.events import EventDisplay, mine_positions
from polls.models import Event
from polls.selectors import PollResults

MINE_PLACEHOLDER = 'data-mine=""'


class EventScreen(StrEnum):
    PHONE = "phone"
    SCREEN = "screen"  # the big screen
    PRESENTER = "presenter"


@dataclass(frozen=True)
class EventView:
    html: str  # phones: as a phone that has not answered the active question sees it
    version: int
    active: int | None = None  # the active question's poll id
    answered_html: str | None = None  # phones only

    @property
    def message(self) -> dict:
        return {
            "type": "results.push",
            "html": self.html,
            "version": self.version,
            "active": self.active,
            "answered_html": self.answered_html,
        }


def event_group(event: Event, screen: EventScreen) -> str:
    return f"{event.group_name}.{screen}"


def event_views(display: EventDisplay) -> dict[EventScreen, EventView]:
    return {screen: event_view(display, screen) for screen in EventScreen}


def event_view(display: EventDisplay, screen: EventScreen) -> EventView:
    active = display.question.id if display.question else None
    results, version = display.seen(presenter=screen is EventScreen.PRESENTER)
    render = partial(_render, screen, display, results=results, version=version)
    if screen is not EventScreen.PHONE:
        return EventView(render(), version, active)
    return EventView(render(answered=False), version, active, answered_html=render(answered=True))


def phone_html(message: dict, picks: dict[int, int]) -> str:
    """The fragment for one phone, from a phone push and what this phone picked per question."""
    mask = picks.get(message.get("active"))
    if mask is None or message.get("answered_html") is None:
        return message["html"]
    return message["answered_html"].replace(MINE_PLACEHOLDER, f'data-mine="{mine_positions(mask)}"', 1)


def _render(
    screen: EventScreen, display: EventDisplay, *, results: PollResults | None, version: int, answered: bool = False
) -> str:
    return render_to_string(
        "partials/event_region.html#push",
        {
            "screen": str(screen),
            "display": display,
            "results": results,
            "answered": answered,
            "mine": "",
            "version": version,
        },
    )
