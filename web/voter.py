"""The browser's side of who is voting: its voter cookie on a request and a response.
The rules (signature, age, minting, the client's address) are `polls.voters`'."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from polls import voters


def voter_key_for(request: HttpRequest) -> str:
    """The browser's voter key, minting one for a new browser; `remember_voter` must then set it."""
    key = voters.voter_key_from_cookies(request.COOKIES)
    if key is None:
        key = getattr(request, "_new_voter_key", None) or voters.voter_key_mint()
        request._new_voter_key = key
    return key


def remember_voter(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    key = getattr(request, "_new_voter_key", None)
    if key:
        response.set_cookie(
            settings.VOTER_COOKIE_NAME,
            voters.voter_cookie_value(key),
            max_age=settings.VOTER_COOKIE_MAX_AGE,
            httponly=True,
            samesite="Lax",
            secure=request.is_secure(),
        )
    return response
