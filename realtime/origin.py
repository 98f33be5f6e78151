"""Which pages may open a WebSocket: the site's own, compared by scheme, host and port.

Channels' `AllowedHostsOriginValidator` compares the Origin's host with ALLOWED_HOSTS only, so a
page served by anything else on an allowed host (`http://127.0.0.1:9999`, a plain-HTTP twin of an
HTTPS site) could open a viewer's socket. This applies the site's cross-site policy (DESIGN.md)
to the handshake: the Origin must be the origin the browser saw (the socket's scheme and its
`Host` header, which nginx passes on with its port), on an allowed host, or be listed in
CSRF_TRUSTED_ORIGINS. A missing or opaque (`null`) Origin is refused.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from realtime.consumers import RefuseHandshake

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_key(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin such as `https://example.com:8443`, or None if it is not one."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:  # a port out of range or not a number
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def websocket_origin_allowed(scope: dict) -> bool:
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope.get("headers", [])}
    origin = _origin_key(headers.get("origin", ""))
    if origin is None:
        return False
    if origin in {_origin_key(trusted) for trusted in settings.CSRF_TRUSTED_ORIGINS}:
        return True
    host = headers.get("host", "")
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
    return origin == _origin_key(f"{scheme}://{host}")


_refuse = RefuseHandshake.as_asgi()


class SameOriginValidator:
    """ASGI middleware: hands the handshake on only when `websocket_origin_allowed`, else refuses it (403)."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if websocket_origin_allowed(scope):
            return await self.application(scope, receive, send)
        return await _refuse(scope, receive, send)
