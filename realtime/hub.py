"""The hub: this process's one channel-layer membership per group, handing each push to the local viewers.

Were every viewer a member of its group, the channel layer would queue (and decode) each push once per
viewer and wake each viewer's task to dispatch it: per-viewer Python work that made an ASGI process
spend most of its time on 1,000 viewers. Instead, the first viewer of a group in a process makes
the hub join the group with a channel of its own and start one reader for it; the reader takes
each push once and hands the rendered fragment to every local viewer of that group, which sends it
on its socket. The last viewer to leave makes the hub leave the group and stop the reader.

A big audience gets fewer pushes a second rather than a growing backlog: after handing a push to N
local viewers the hub waits N / LIVE_SENDS_PER_SECOND seconds before the next, and then hands out
only the newest push that arrived meanwhile (each carries the whole tally). Below
LIVE_SENDS_PER_SECOND / 4 viewers per process that wait is shorter than the broadcaster's tick, so
nothing changes; at 2,500 viewers per process (5,000 on the stack's two) it is 0.5 s: 2 pushes a second.

One hub per event loop: channel-layer connections and tasks belong to a loop (tests run one per test).
"""

import asyncio
import logging
import weakref
from dataclasses import dataclass, field
from typing import Protocol

from channels.layers import get_channel_layer
from django.conf import settings

logger = logging.getLogger(__name__)

# The message that says a group's poll was deleted (realtime.gone): its viewers close, nothing is shown.
POLL_GONE = "poll.gone"
RETRY_SECONDS = 1.0  # after a failed receive (e.g. Redis restarting), so the reader does not spin


class Viewer(Protocol):
    def take(self, message: dict) -> None:
        """Sends the push's fragment on (or drops it); must not block, as every viewer of the group waits behind it."""

    def gone(self) -> None:
        """Its poll was deleted: closes the socket; must not block either."""


@dataclass(eq=False)
class _Group:
    channel: str
    tasks: list[asyncio.Task] = field(default_factory=list)  # the reader and the fan-out
    viewers: set[Viewer] = field(default_factory=set)
    newest: dict | None = None  # the newest push not handed out yet
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def stop(self) -> None:
        for task in self.tasks:
            task.cancel()


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
                joined.tasks = [
                    asyncio.create_task(self._read(joined), name=f"hub read {group}"),
                    asyncio.create_task(self._fan_out(joined), name=f"hub fan-out {group}"),
                ]
                try:
                    await self.channel_layer.group_add(group, joined.channel)
                except BaseException:
                    joined.stop()
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
            joined.stop()
            try:
                await self.channel_layer.group_discard(group, joined.channel)
            except Exception:
                # Nobody reads the channel any more; a membership left behind only costs the layer a copy.
                logger.exception("Hub: could not leave %s", group)

    async def _read(self, joined: _Group) -> None:
        """Keeps the newest push for the fan-out until cancelled; a failure is logged, never fatal."""
        while True:
            try:
                message = await self.channel_layer.receive(joined.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Hub: receive failed on %s; retrying", joined.channel)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if message.get("html") is None and message.get("type") != POLL_GONE:
                logger.warning("Hub: ignored a message without html: %r", message.get("type"))
                continue
            joined.newest = message
            joined.arrived.set()

    async def _fan_out(self, joined: _Group) -> None:
        """Hands the newest push to every viewer of the group, then waits in proportion to their number."""
        while True:
            await joined.arrived.wait()
            joined.arrived.clear()
            message, joined.newest = joined.newest, None
            viewers = tuple(joined.viewers)  # a copy: a viewer may leave while the push is handed out
            for viewer in viewers:
                try:
                    if message.get("type") == POLL_GONE:
                        viewer.gone()
                    else:
                        viewer.take(message)
                except Exception:
                    logger.exception("Hub: a viewer failed to take a push")
            await asyncio.sleep(len(viewers) / settings.LIVE_SENDS_PER_SECOND)


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub]" = weakref.WeakKeyDictionary()


def hub() -> Hub:
    """This event loop's hub, made on first use."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = Hub(get_channel_layer())
    return found
