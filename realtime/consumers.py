"""WebSocket consumers: one per viewer; pushes come from the broadcaster through this process's hub."""

import asyncio
import logging
import math
import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from polls import events
from polls.models import Event, Poll
from realtime.event_live import EventScreen, event_group, event_view, phone_html
from realtime.hub import hub
from realtime.live import audience_group, live_view
from realtime.presence import presence_leave, presence_watch
from realtime.sockets import client_network, open_sockets
from realtime.viewer import viewer_poll_and_audience, voter_key_from_scope

logger = logging.getLogger(__name__)

# Close code for an unknown poll or a wrong owner link: pages stop reconnecting on it.
CLOSE_POLL_NOT_FOUND = 4404
# Pages send only small keep-alive pings. Bigger messages close the socket with 1009 ("message too
# big"); `make run` and the stack also set the server's own limit (uvicorn --ws-max-size 4096).
MAX_INCOMING_BYTES = 4096
CLOSE_MESSAGE_TOO_BIG = 1009
# What an event's phone sends after voting over HTTP, and how often its picks may be read again for it.
VOTED = "voted"
PICKS_READ_SECONDS = 1.0


class RefuseHandshake(AsyncWebsocketConsumer):
    """Refuses the handshake (the server answers 403): a path no route matches, a foreign Origin.

    Without a route for them, Channels' router raises and the server logs a traceback (with the
    path, owner tokens included) and answers 500. No channel layer: a refusal costs no Redis.
    """

    channel_layer_alias = None

    async def connect(self):
        await self.close()


class PollResultsConsumer(AsyncWebsocketConsumer):
    """Sends the current results on connect, then the pushes the hub hands it.

    Nothing is rendered per client for a push; the snapshot on connect is what makes every
    reconnect resync. A push older than what this viewer already has is dropped, so a viewer
    never sees the counts go back. While a send waits on a slow socket, only the newest fragment
    waits behind it: each carries the whole tally, so the ones in between would only be stale.
    """

    # No channel of its own: the hub is the process's one member of the group (realtime.hub).
    channel_layer_alias = None
    group_name: str | None = None
    poll_id: int | None = None
    shown_version = -1
    _sending: asyncio.Task | None = None
    _next_html: str | None = None
    _last_html: str | None = None
    _closing: asyncio.Task | None = None
    network: str | None = None  # counted in `open_sockets` while this socket is open

    async def connect(self):
        if not await self._take_a_socket():
            return
        kwargs = self.scope["url_route"]["kwargs"]
        try:
            poll, audience = await database_sync_to_async(viewer_poll_and_audience)(
                slug=kwargs["slug"], owner_token=kwargs.get("token"), voter_key=voter_key_from_scope(self.scope)
            )
        except Poll.DoesNotExist:
            await self.accept()
            await self.close(code=CLOSE_POLL_NOT_FOUND)
            return
        await self.accept()  # before joining: a push may be sent on as soon as this viewer has joined
        # Join before reading the snapshot: a change after the read then arrives as a push, and
        # `shown_version` drops whichever of the two is older.
        self.group_name = audience_group(poll, audience)
        await hub().join(self.group_name, self)
        await presence_watch(polls=[poll])  # before the snapshot: the broadcaster pushes what follows it
        self.poll_id = poll.id
        snapshot = await database_sync_to_async(live_view)(poll=poll, audience=audience)
        self.push(snapshot.html, snapshot.version)

    async def _take_a_socket(self) -> bool:
        """Counts this socket against its network's share here; False once refused (403 at the handshake)."""
        network = client_network(self.scope)
        if network is not None:
            if not open_sockets.take(network):
                await self.close()  # this network holds enough sockets here
                return False
            self.network = network
        return True

    async def _leave(self) -> None:
        """Gives back the socket's share and leaves the group: every consumer's first steps on disconnect."""
        if self.network is not None:
            open_sockets.give_back(self.network)
            self.network = None
        if self.group_name:
            await hub().leave(self.group_name, self)

    async def disconnect(self, code):
        await self._leave()
        if self.poll_id is not None:
            await presence_leave(poll_ids=[self.poll_id])

    async def receive(self, text_data=None, bytes_data=None):
        """Pages send keep-alive pings so idle proxies keep the socket; there is nothing to answer."""
        size = len(bytes_data) if bytes_data is not None else len((text_data or "").encode())
        if size > MAX_INCOMING_BYTES:
            await self.close(code=CLOSE_MESSAGE_TOO_BIG)

    def take(self, message: dict) -> None:
        """A push from the hub (realtime.hub)."""
        self.push(message["html"], message.get("version"))

    def push(self, html: str, version: int | None) -> None:
        """Sends `html` unless older than what this viewer has, or the very fragment it was handed last (a
        poll's first viewer asks for a push that repeats its snapshot); returns without waiting on the socket."""
        if html == self._last_html:
            return
        if version is not None:
            if version < self.shown_version:
                return
            self.shown_version = version
        self._last_html = html
        if self._sending is not None:
            self._next_html = html  # replaces any fragment already waiting: it is older
            return
        # Eager: the send runs now, and only becomes a scheduled task if the socket makes it wait.
        sending = asyncio.Task(self._send_newest(html), loop=asyncio.get_running_loop(), eager_start=True)
        if not sending.done():
            self._sending = sending

    def gone(self) -> None:
        """Its poll was deleted (realtime.gone): closes with the code pages stop on; returns without waiting."""
        self._closing = asyncio.get_running_loop().create_task(self.close(code=CLOSE_POLL_NOT_FOUND))

    async def _send_newest(self, html: str | None) -> None:
        try:
            while html is not None:
                await self.send(text_data=html)
                html, self._next_html = self._next_html, None
        except Exception as error:  # the socket went away; disconnect() takes this viewer out of the hub
            logger.debug("Push not sent: %r", error)
        finally:
            self._sending = None


class EventConsumer(PollResultsConsumer):
    """One screen of an event: a phone (`/ws/events/<code>/`), the big screen (`…/live/`) or the
    presenter's console (`…/manage/<token>/`). Sends the screen's region on connect, then every push.

    A phone is sent the fragment for phones that answered the active question or for those that did
    not, by what this browser answered (`picks`): read when it connects, and again when the page says
    "voted" after its vote's answer (the socket stays open).
    """

    screen = EventScreen.PHONE
    event_id: int | None = None
    question_ids: list[int] | None = None
    picks: dict[int, int] | None = None
    _last_message: dict | None = None
    _picks_read_at = -math.inf

    async def connect(self):
        if not await self._take_a_socket():
            return
        kwargs = self.scope["url_route"]["kwargs"]
        self.screen = EventScreen(kwargs.get("screen", EventScreen.PHONE))
        try:
            event, questions, picks = await database_sync_to_async(self._event)(kwargs["code"], kwargs.get("token"))
        except Event.DoesNotExist:
            await self.accept()
            await self.close(code=CLOSE_POLL_NOT_FOUND)
            return
        await self.accept()
        self.picks = picks
        self.group_name = event_group(event, self.screen)
        await hub().join(self.group_name, self)
        await presence_watch(polls=questions, phone_of_event=self._phone_of(event.id))
        self.event_id, self.question_ids = event.id, [poll.id for poll in questions]
        snapshot = await database_sync_to_async(lambda: event_view(events.event_display(event=event), self.screen))()
        self.take(snapshot.message)

    def _phone_of(self, event_id: int) -> int | None:
        """The event this socket counts as a phone of (the console shows how many), if it is one."""
        return event_id if self.screen is EventScreen.PHONE else None

    def _event(self, code: str, token: str | None) -> tuple[Event, list[Poll], dict[int, int]]:
        if self.screen is EventScreen.PRESENTER:
            event = events.event_get_for_owner(code=code, token=token or "")
        else:
            event = events.event_get_by_code(code=code)
        questions = list(event.questions.only("id", "slug"))
        picks = {}
        if self.screen is EventScreen.PHONE:
            picks = events.event_voter_picks(event_id=event.id, voter_key=voter_key_from_scope(self.scope))
        return event, questions, picks

    async def disconnect(self, code):
        await self._leave()
        if self.event_id is not None:
            await presence_leave(poll_ids=self.question_ids or [], phone_of_event=self._phone_of(self.event_id))
            self.event_id = None

    async def receive(self, text_data=None, bytes_data=None):
        """Besides keep-alive pings, a phone says "voted" after its vote's answer: its picks are read again
        (one query, at most one a second) and its screen resent as a phone that answered sees it."""
        await super().receive(text_data=text_data, bytes_data=bytes_data)
        if text_data != VOTED or self.screen is not EventScreen.PHONE or self.event_id is None:
            return
        now = time.monotonic()
        if now - self._picks_read_at < PICKS_READ_SECONDS:
            return
        self._picks_read_at = now
        voter_key = voter_key_from_scope(self.scope)
        self.picks = await database_sync_to_async(events.event_voter_picks)(event_id=self.event_id, voter_key=voter_key)
        if self._last_message is not None:
            self.take(self._last_message)

    def take(self, message: dict) -> None:
        self._last_message = message
        html = phone_html(message, self.picks or {}) if self.screen is EventScreen.PHONE else message["html"]
        self.push(html, message.get("version"))
