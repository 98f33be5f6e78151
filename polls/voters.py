"""Who is voting: the one home of voter identity for every door (pages, API, live screens).

- A browser is known by its voter key, kept in a signed cookie (`voter_cookie_value` to set it,
  `voter_key_from_cookies` to read it back: the one salt and the one age).
- A program names its voter itself; `voter_key_normalise` says when two spellings are one voter.
- A client is counted by its network: its address (`client_address`, trusting a proxy's header only
  when `CLIENT_IP_HEADER` names one) cut to the network one household holds (`address_network`).

The doors pass what they hold (a request's cookies and META, a WebSocket's headers), so nothing
here knows HTTP objects.
"""

import ipaddress
import secrets
import unicodedata
from collections.abc import Mapping

from django.conf import settings
from django.core import signing

# Part of every voter cookie's signature: changing it forgets every browser's vote.
VOTER_COOKIE_SALT = "crowdtick.voter"


def voter_key_mint() -> str:
    """A new browser's voter key: 128 random bits."""
    return secrets.token_urlsafe(16)


def voter_cookie_value(voter_key: str) -> str:
    """The signed cookie value that carries `voter_key` (what Django's `set_signed_cookie` writes)."""
    return _cookie_signer().sign(voter_key)


def voter_key_from_cookies(cookies: Mapping[str, str]) -> str | None:
    """The voter key of a browser's signed cookie, or None: absent, tampered with or too old."""
    signed = cookies.get(settings.VOTER_COOKIE_NAME)
    if not signed:
        return None
    try:
        return _cookie_signer().unsign(signed, max_age=settings.VOTER_COOKIE_MAX_AGE)
    except signing.BadSignature:  # SignatureExpired included
        return None


def _cookie_signer() -> signing.Signer:
    # The salt Django's signed cookies use (`get_signed_cookie`), so cookies set before stay valid.
    return signing.get_cookie_signer(salt=settings.VOTER_COOKIE_NAME + VOTER_COOKIE_SALT)


def voter_key_normalise(key: str) -> str:
    """The form a voter key is recorded and compared in: NFKC, case-folded, trimmed.

    So `alice`, `Alice`, ` alice `, fullwidth `ａｌｉｃｅ` and the composed and decomposed spellings of
    `José` are one voter, and one ballot: a program (or a person typing a name) that varies the
    spelling does not vote twice. Case folding can undo NFKC for a few characters, hence NFKC again.
    An empty result means the key was only spaces: callers refuse it.
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", key).casefold()).strip()


def client_address(meta: Mapping[str, str]) -> str | None:
    """The client's address, from a request's META: the proxy's header when CLIENT_IP_HEADER names
    one, else the socket's.

    Of a list (`X-Forwarded-For: <what the client sent>, <what our proxy saw>`) only the last entry
    is the proxy's own; the ones before it are whatever the client wrote. Text that is not an IP
    address is never used as one: it would be counted by no rate limit and match no other ballot.
    """
    if settings.CLIENT_IP_HEADER:
        forwarded = _ip_address(meta.get(settings.CLIENT_IP_HEADER, "").rsplit(",", 1)[-1])
        if forwarded:
            return forwarded
    return _ip_address(meta.get("REMOTE_ADDR") or "")


def _ip_address(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def address_network(ip_address: str | None) -> str | None:
    """The network a client is counted by: its IPv4 address, or the /64 of an IPv6 address.

    One phone or household holds a whole IPv6 /64, so counting single addresses would let it
    rotate through billions of them.
    """
    if not ip_address:
        return None
    try:
        address = ipaddress.ip_address(ip_address)
    except ValueError:
        return None
    if address.version == 6:
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
