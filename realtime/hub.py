"""The hub: this process's one channel-layer membership per group, handing each push to the local viewers.

Were every viewer a member of its group, the channel layer would queue (and decode) each push once per
viewer and wake each viewer's task to dispatch it: per-viewer Python work that made an ASGI process
spend most of its time on 1,000 viewers. Instead, the first viewer of a group in a process makes
the hub join the group with a channel of its own and start one reader for it; the reader takes
each push once and hands the rendered fragment to every local viewer of that group, which sends it
on its socket. The last viewer to leave makes the hub leave the group and stop the reader.

One hub per event loop: channel-layer connections and tasks belong to a loop (tests run one per test).
"""

import asyncio
import logging
import weakref
from dataclasses import dataclass, field
from typing import Protocol

from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

RETRY_SECONDS = 1.0  # after a failed receive (e.g. Redis restarting), so the reader does not spin


class Viewer(Protocol):
    def push(self, html: str, version: int | None) -> None:
        """Sends the fragment on (or drops it); must not block, as every viewer of the group waits behind it."""


@dataclass(eq=False)
class _Group:
    channel: str
    reader: asyncio.Task | None = None
    viewers: set[Viewer] = field(default_factory=set)


class Hub:
    def __init__(self, channel_layer) -> None:
        self.channel_layer = channel_layer
        self._groups: dict[str, _Group] = {}
        # Joins and leaves wait on the channel layer: one at a time, so a group is never joined twice or
        # left while a viewer is joining it.
        self._lock = asyncio.Lock()

    def viewers(self, group: str) -> frozenset[Viewer]:
        joined = self._groups.get(group)
        return frozenset(joined.viewers) if joined else frozenset()

    async def join(self, group: str, viewer: Viewer) -> None:
        """Returns once the group's pushes reach `viewer`: read its snapshot after this, not before."""
        async with self._lock:
            joined = self._groups.get(group)
            if joined is None:
                joined = _Group(channel=await self.channel_layer.new_channel())
                # Reading first: cancelling the reader is what lets go of the channel if the join fails.
                joined.reader = asyncio.create_task(self._read(joined), name=f"hub {group}")
                try:
                    await self.channel_layer.group_add(group, joined.channel)
                except BaseException:
                    joined.reader.cancel()
                    raise
                self._groups[group] = joined
            joined.viewers.add(viewer)

    async def leave(self, group: str, viewer: Viewer) -> None:
        async with self._lock:
            joined = self._groups.get(group)
            if joined is None or viewer not in joined.viewers:
                return
            joined.viewers.discard(viewer)
            if joined.viewers:
                return
            del self._groups[group]
            joined.reader.cancel()
            try:
                await self.channel_layer.group_discard(group, joined.channel)
            except Exception:
                # Nobody reads the channel any more; a membership left behind only costs the layer a copy.
                logger.exception("Hub: could not leave %s", group)

    async def _read(self, joined: _Group) -> None:
        """Hands each push to the group's viewers until cancelled; a failure is logged, never fatal."""
        while True:
            try:
                message = await self.channel_layer.receive(joined.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Hub: receive failed on %s; retrying", joined.channel)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            html, version = message.get("html"), message.get("version")
            if html is None:
                logger.warning("Hub: ignored a message without html: %r", message.get("type"))
                continue
            # A copy: a viewer may leave while the fragment is handed out.
            for viewer in tuple(joined.viewers):
                try:
                    viewer.push(html, version)
                except Exception:
                    logger.exception("Hub: a viewer failed to take a push")


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub]" = weakref.WeakKeyDictionary()


def hub() -> Hub:
    """This event loop's hub, made on first use."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = Hub(get_channel_layer())
    return found
