"""Who is voting: the signed voter cookie and the client's address."""

import ipaddress
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
    """The client's address: from the proxy's header when CLIENT_IP_HEADER names one, else the socket's.

    Of a list (`X-Forwarded-For: <what the client sent>, <what our proxy saw>`) only the last entry
    is the proxy's own; the ones before it are whatever the client wrote. Text that is not an IP
    address is never used as one: it would be counted by no rate limit and match no other ballot.
    """
    if settings.CLIENT_IP_HEADER:
        forwarded = _ip_address(request.META.get(settings.CLIENT_IP_HEADER, "").rsplit(",", 1)[-1])
        if forwarded:
            return forwarded
    return _ip_address(request.META.get("REMOTE_ADDR") or "")


def _ip_address(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None
