"""Shared test helpers: polls, votes and WebSocket connections the way the site makes them."""

import itertools
import re

from channels.testing import WebsocketCommunicator
from django.test import TestCase

from crowdtick.asgi import application
from polls import services

ORIGIN = (b"origin", b"http://127.0.0.1:8000")
HOST = (b"host", b"127.0.0.1:8000")


def make_poll(**kwargs):
    kwargs = {"question": "Tea or coffee?", "choices": ["Tea", "Coffee"], "dedupe": "none"} | kwargs
    poll, token = services.poll_create(**kwargs)
    return poll, token


_voters = itertools.count()


def vote(poll, choice_index=0, voter_key=None):
    """Casts a ballot and runs its after-commit work (the tally), as a committed vote would; by a new
    voter unless `voter_key` says whose (the per-voter rate limit counts every attempt)."""
    voter_key = voter_key or f"voter-{next(_voters)}"
    choice = list(poll.choices.all())[choice_index]
    with TestCase.captureOnCommitCallbacks(execute=True):
        return services.vote_cast(poll=poll, choice_ids=[choice.id], voter_key=voter_key, ip_address=None)


def connect(path, *, headers=(ORIGIN, HOST)):
    """A communicator through the real ASGI application (origin check, routing, consumer)."""
    return WebsocketCommunicator(application, path, headers=list(headers))


def version_of(html: str) -> int | None:
    match = re.search(r'data-version="(\d+)"', html)
    return int(match.group(1)) if match else None
