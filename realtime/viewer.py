"""Who is watching: the poll and audience of a WebSocket connection, decided at connect time."""

from django.conf import settings
from django.http import HttpRequest
from django.http.cookie import parse_cookie

from polls import selectors
from polls.models import Poll
from realtime.live import Audience

# Must match web.voter's salt: the cookie is set by the HTML views and only read here
# (realtime may not import web). A test votes through a page and connects with its cookie.
VOTER_COOKIE_SALT = "crowdtick.voter"


def voter_key_from_scope(scope: dict) -> str | None:
    """The voter key of the connection's signed voter cookie, or None (absent or tampered with)."""
    header = next((value for name, value in scope.get("headers", []) if name == b"cookie"), b"")
    # Read through HttpRequest so the cookie is checked exactly as the HTML views check it.
    request = HttpRequest()
    request.COOKIES = parse_cookie(header.decode("latin-1"))
    return request.get_signed_cookie(
        settings.VOTER_COOKIE_NAME, default=None, salt=VOTER_COOKIE_SALT, max_age=settings.VOTER_COOKIE_MAX_AGE
    )


def viewer_poll_and_audience(*, slug: str, owner_token: str | None, voter_key: str | None) -> tuple[Poll, Audience]:
    """Raises `Poll.DoesNotExist` for an unknown poll or a wrong owner token."""
    if owner_token is not None:
        return selectors.poll_get_for_owner(slug=slug, token=owner_token), Audience.OWNER
    poll = selectors.poll_get(slug=slug)
    if selectors.voting_reveals_results(poll=poll) and selectors.voter_has_voted(poll=poll, voter_key=voter_key):
        return poll, Audience.VOTED
    return poll, Audience.PUBLIC
