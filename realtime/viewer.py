"""Who is watching: the poll and audience of a WebSocket connection, decided at connect time."""

from django.http.cookie import parse_cookie

from polls import selectors, voters
from polls.models import Poll
from realtime.live import Audience


def voter_key_from_scope(scope: dict) -> str | None:
    """The voter key of the connection's signed voter cookie, or None (absent, tampered with or too old)."""
    header = next((value for name, value in scope.get("headers", []) if name == b"cookie"), b"")
    return voters.voter_key_from_cookies(parse_cookie(header.decode("latin-1")))


def viewer_poll_and_audience(*, slug: str, owner_token: str | None, voter_key: str | None) -> tuple[Poll, Audience]:
    """Raises `Poll.DoesNotExist` for an unknown poll or a wrong owner token."""
    if owner_token is not None:
        return selectors.poll_get_for_owner(slug=slug, token=owner_token), Audience.OWNER
    poll = selectors.poll_get(slug=slug)
    if selectors.voting_reveals_results(poll=poll) and selectors.voter_has_voted(poll=poll, voter_key=voter_key):
        return poll, Audience.VOTED
    return poll, Audience.PUBLIC
