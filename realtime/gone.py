"""A deleted poll's screens are told at once, not when they next reconnect.

The poll's viewers sit in its audience groups; when the delete commits, each group gets a
"poll.gone" message, and every socket in it closes with `CLOSE_POLL_NOT_FOUND`, which pages show
as "This poll no longer exists" and never retry (static/js/live.js). Sent from the process that
deleted the poll (one channel-layer call per audience); a socket that misses it (Redis down at
that moment) learns the same on its next reconnect.
"""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from polls.models import Poll
from realtime.hub import POLL_GONE
from realtime.live import Audience, audience_group

logger = logging.getLogger(__name__)

GONE_MESSAGE = {"type": POLL_GONE}


def announce_poll_gone(sender, instance: Poll, **kwargs) -> None:
    """post_delete receiver (RealtimeConfig.ready): after the commit, tells the poll's screens it is gone."""
    groups = [audience_group(instance, audience) for audience in Audience]
    transaction.on_commit(lambda: _send(groups))


def _send(groups: list[str]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        for group in groups:
            async_to_sync(layer.group_send)(group, GONE_MESSAGE)
    except Exception:  # the delete is done either way; the screens learn it on reconnect
        logger.exception("Could not tell the screens of %s that their poll is gone", groups[0])
