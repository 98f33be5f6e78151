"""Who is voting: the signed voter cookie and the client's address."""

import secrets

from django.conf import settings
from django.http import HttpRequest, HttpResponse

_SALT = "crowdtick.voter"


def voter_key_from_cookie(request: HttpRequest) -> str | None:
    """The voter key of the browser's signed cookie, or None (absent or tampered with)."""
    return request.get_signed_cookie(settings.VOTER_COOKIE_NAME, default=None, salt=_SALT)


def voter_key_for(request: HttpRequest) -> str:
    """The browser's voter key, minting one (128 bits) for a new browser.

    `remember_voter` must then set it on the response.
    """
    key = voter_key_from_cookie(request)
    if key is None:
        key = getattr(request, "_new_voter_key", None) or secrets.token_urlsafe(16)
        request._new_voter_key = key
    return key


def remember_voter(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    key = getattr(request, "_new_voter_key", None)
    if key:
        response.set_signed_cookie(
            settings.VOTER_COOKIE_NAME,
            key,
            salt=_SALT,
            max_age=settings.VOTER_COOKIE_MAX_AGE,
            httponly=True,
            samesite="Lax",
            secure=request.is_secure(),
        )
    return response


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: from the proxy's header when one is configured, else the socket's."""
    if settings.CLIENT_IP_HEADER:
        forwarded = request.META.get(settings.CLIENT_IP_HEADER, "")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.META.get("REMOTE_ADDR")
