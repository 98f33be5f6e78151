"""The broadcaster: pushes each changed poll's results to its live viewers, at most 4 times a second.

Each tick takes the polls whose results changed (`tally_pop_changed`) and those whose deadline
or opening time just passed, keeps those that someone watches (`realtime.presence`), reads their
tallies in one round trip, renders each one's live region once per audience kind, and sends it
to the poll's audience groups with the tally's version. A change of a poll nobody watches costs
nothing more: its first viewer gets a snapshot on connect and marks it changed again.

Channel layers deliver at most once; as every push carries the whole tally, a lost one heals with
the next, and every (re)connect gets a snapshot. A version lower than one already sent for a poll
(Redis lost recent increments) is held back until the tally catches up or the reconciler repairs it.

In production `manage.py broadcast` runs it, in as many processes as wanted: they share a lease in
Redis and the one holding it sends, the others stand by (`realtime.leadership`). In embedded mode it
is a background task of the single ASGI process (see `realtime.lifespan`).
"""

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from channels.db import database_sync_to_async
from django.utils import timezone

from polls import events, selectors
from polls.models import Poll
from polls.tallies.changes import tally_mark_changed, tally_pop_changed
from realtime.event_live import EventView, event_group, event_views
from realtime.leadership import LEASE_SECONDS, BroadcastLease
from realtime.live import LiveView, audience_group, live_views
from realtime.presence import presence_watched_poll_ids

logger = logging.getLogger(__name__)

TICK_SECONDS = 0.25  # at most 4 pushes a second per poll
DEADLINE_CHECK_SECONDS = 1.0  # how late a kiosk may learn that a deadline passed
# What was sent last, per poll and audience, for versioning and de-duplication: bounded by the
# fragments' size (about 1-3 KiB each), the least recently sent forgotten first. A forgotten poll
# only risks one repeated push, which its viewers drop as identical.
REMEMBERED_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Push:
    poll: Poll  # the poll whose change it shows: marked changed again if the send fails
    key: tuple  # what `_sent` remembers it by: (poll id, audience) or ("event", event id, screen)
    group: str
    view: LiveView | EventView

    @property
    def message(self) -> dict:
        if isinstance(self.view, EventView):
            return self.view.message
        return {"type": "results.push", "html": self.view.html, "version": self.view.version}


class Broadcaster:
    def __init__(self, channel_layer, *, lease: BroadcastLease | None = None) -> None:
        self.channel_layer = channel_layer
        self.lease = lease  # None: the only broadcaster (embedded mode, tests)
        self._sent: OrderedDict[tuple, LiveView | EventView] = OrderedDict()
        self._sent_bytes = 0
        self._deadlines_checked_at: datetime = timezone.now()
        self._deadlines_checked_monotonic = time.monotonic()

    async def run(self) -> None:
        """Ticks until cancelled (while holding the lease, if any); a failing tick is logged and the next
        one tries again. Cancelled, it releases the lease so a standby takes over at once."""
        try:
            while True:
                started = time.monotonic()
                try:
                    if await self._may_tick():
                        await self.tick()
                except Exception:
                    logger.exception("Broadcaster tick failed; the next tick retries")
                await asyncio.sleep(max(0.0, TICK_SECONDS - (time.monotonic() - started)))
        finally:
            if self.lease is not None:
                await self.lease.release()

    async def _may_tick(self) -> bool:
        if self.lease is None:
            return True
        if not await self.lease.hold():
            return False
        if self.lease.taken_over:
            # Another broadcaster may have pushed since this one last did: what it remembers sending is
            # no longer what viewers show. And the deadlines the last holder had not checked yet are due.
            self._sent.clear()
            self._sent_bytes = 0
            self._deadlines_checked_at = timezone.now() - timedelta(seconds=LEASE_SECONDS + DEADLINE_CHECK_SECONDS)
        return True

    async def tick(self) -> int:
        """One round: returns the number of group messages sent."""
        pushes = await database_sync_to_async(self.collect)()
        if pushes and self.lease is not None:
            await self.lease.hold()  # renewed for the sends, so a slow collect does not use up their time
        for sent, push in enumerate(pushes):
            if self.lease is not None and not self.lease.held():
                # The tick outlived the lease: another broadcaster may hold it now, and pushes of two
                # senders have no order. It pushes the rest.
                logger.warning("Lease ran out mid-tick: %d pushes left to the next holder", len(pushes) - sent)
                await self._give_back(pushes[sent:])
                return sent
            try:
                await self.channel_layer.group_send(push.group, push.message)
            except Exception:
                await self._give_back([push])
                raise
        return len(pushes)

    async def _give_back(self, unsent: list[Push]) -> None:
        """Not sent: forgets them, so they are not taken for duplicates, and asks for another try."""
        for push in unsent:
            self._remember(push.key, None)
        for poll in {push.poll.id: push.poll for push in unsent}.values():
            await database_sync_to_async(tally_mark_changed)(poll=poll)

    def collect(self) -> list[Push]:
        """The pushes of this tick (runs in a thread: it reads the database and Redis)."""
        changed = tally_pop_changed() | self._polls_past_a_deadline()
        if not changed:
            return []
        # Presence is read after the changes are taken: see realtime.presence.
        poll_ids = changed & presence_watched_poll_ids().keys()
        if not poll_ids:
            return []
        polls = selectors.polls_with_choices(poll_ids=poll_ids)
        results = selectors.polls_results(polls=polls)
        pushes = []
        for poll in polls:
            for audience, view in live_views(poll=poll, results=results[poll.id]).items():
                key = (poll.id, audience)
                if self._is_news(key, view):
                    pushes.append(Push(poll, key, audience_group(poll, audience), view))
        return pushes + self._event_pushes(polls, results)

    def _event_pushes(self, polls: list, results: dict[int, selectors.PollResults]) -> list[Push]:
        """Each event whose question on screen changed (a vote, the presenter, its window ending): its
        screens' regions. The presenter's changes mark that question changed (polls.events)."""
        questions = {poll.id: poll for poll in polls if poll.event_id is not None}
        if not questions:
            return []
        pushes = []
        for event in events.events_showing(poll_ids=questions.keys()):
            question = questions[event.active_id]
            display = events.event_display(event=event, question=question, results=results[question.id])
            for screen, view in event_views(display).items():
                key = ("event", event.id, screen)
                if self._is_news(key, view):
                    pushes.append(Push(question, key, event_group(event, screen), view))
        return pushes

    def _is_news(self, key: tuple, view: LiveView | EventView) -> bool:
        last = self._sent.get(key)
        if last == view:
            return False  # e.g. the hidden notice again: no push, which also hides when votes come in
        if last is not None and last.version is not None and view.version is not None and view.version < last.version:
            logger.info("%s: version %s is behind %s (sent); held back", key, view.version, last.version)
            return False
        self._remember(key, view)
        return True

    def _remember(self, key: tuple, view: LiveView | EventView | None) -> None:
        """Keeps `view` as the last one sent for `key` (None forgets it), within REMEMBERED_BYTES."""
        previous = self._sent.pop(key, None)
        if previous is not None:
            self._sent_bytes -= len(previous.html)
        if view is not None:
            self._sent[key] = view
            self._sent_bytes += len(view.html)
        while self._sent_bytes > REMEMBERED_BYTES and self._sent:
            self._sent_bytes -= len(self._sent.popitem(last=False)[1].html)

    def _polls_past_a_deadline(self) -> set[int]:
        """Polls that opened or closed by the clock since the last check: nobody voted, yet they changed."""
        if time.monotonic() - self._deadlines_checked_monotonic < DEADLINE_CHECK_SECONDS:
            return set()
        now = timezone.now()
        poll_ids = selectors.poll_ids_opened_or_closed_between(start=self._deadlines_checked_at, end=now)
        self._deadlines_checked_at, self._deadlines_checked_monotonic = now, time.monotonic()
        return poll_ids
