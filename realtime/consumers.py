"""WebSocket consumers: one group per poll and audience; pushes come from the broadcaster."""

from collections import OrderedDict

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from polls.models import Poll
from realtime.live import audience_group, live_view
from realtime.viewer import viewer_poll_and_audience, voter_key_from_scope

# Close code for an unknown poll or a wrong owner link: pages stop reconnecting on it.
CLOSE_POLL_NOT_FOUND = 4404


class _NewestPushes:
    """The newest version pushed to each group in this process, as its viewers handle pushes.

    When a process falls behind, each viewer's queue holds several pushes. A push older than one
    another viewer of the same group already handled can be skipped: every member got every push,
    so the newer one is queued behind it, and it carries the whole tally. Behind, a process then
    sends each viewer only the latest results instead of working through a growing backlog.
    """

    LIMIT = 10_000  # groups remembered; a forgotten group only means nothing is skipped

    def __init__(self) -> None:
        self._versions: OrderedDict[str, int] = OrderedDict()

    def is_superseded(self, group: str, version: int) -> bool:
        newest = self._versions.get(group, -1)
        if version < newest:
            return True
        self._versions[group] = version
        self._versions.move_to_end(group)
        if len(self._versions) > self.LIMIT:
            self._versions.popitem(last=False)
        return False


_newest_pushes = _NewestPushes()


class PollResultsConsumer(AsyncWebsocketConsumer):
    """Sends the current results on connect, then forwards the broadcaster's pushes.

    Nothing is rendered per client for a push; the snapshot on connect is what makes every
    reconnect resync. A push older than what this viewer already has is dropped, so a viewer
    never sees the counts go back.
    """

    group_name: str | None = None
    shown_version = -1

    async def connect(self):
        kwargs = self.scope["url_route"]["kwargs"]
        try:
            poll, audience = await database_sync_to_async(viewer_poll_and_audience)(
                slug=kwargs["slug"], owner_token=kwargs.get("token"), voter_key=voter_key_from_scope(self.scope)
            )
        except Poll.DoesNotExist:
            await self.accept()
            await self.close(code=CLOSE_POLL_NOT_FOUND)
            return
        # Join before reading the snapshot: a change after the read then arrives as a push.
        self.group_name = audience_group(poll, audience)
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()
        snapshot = await database_sync_to_async(live_view)(poll=poll, audience=audience)
        await self._forward(snapshot.html, snapshot.version)

    async def disconnect(self, code):
        if self.group_name:
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        """Pages send keep-alive pings so idle proxies keep the socket; there is nothing to answer."""

    async def results_push(self, event):
        version = event["version"]
        if version is not None and _newest_pushes.is_superseded(self.group_name, version):
            return
        await self._forward(event["html"], version)

    async def _forward(self, html: str, version: int | None) -> None:
        if version is not None:
            if version < self.shown_version:
                return
            self.shown_version = version
        await self.send(text_data=html)
