"""How many live sockets each network holds open in this process, so that one address cannot take them all.

Counted per ASGI process, in memory: a socket lives and dies in its process, so the count costs no
Redis round trip and dies with a crashed process. With N ASGI processes behind nginx a network may
hold up to N times the limit. The limit stays generous (`WS_SOCKETS_PER_NETWORK`): a hall of a few
thousand phones may share one NAT address.
"""

from collections import Counter

from django.conf import settings

from polls.voters import address_network


def client_network(scope: dict) -> str | None:
    """The network (address, or IPv6 /64) of a connection's client; None when the server gave none."""
    client = scope.get("client") or (None, None)
    return address_network(client[0])


class OpenSockets:
    """Open sockets per network. Used from the event loop only, so it needs no lock."""

    def __init__(self) -> None:
        self._per_network: Counter[str] = Counter()

    def take(self, network: str) -> bool:
        """Counts one more socket of `network`, unless it already holds the limit (then False)."""
        if self._per_network[network] >= settings.WS_SOCKETS_PER_NETWORK:
            return False
        self._per_network[network] += 1
        return True

    def give_back(self, network: str) -> None:
        self._per_network[network] -= 1
        if self._per_network[network] <= 0:
            del self._per_network[network]


open_sockets = OpenSockets()
