"""What the security tests share: hostile polls, and reading pages the way a browser would."""

import json
import os
import socket
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.test import TestCase

from polls import events, services
from polls.models import Poll

IMG_PAYLOAD = "<img src=x onerror=alert(1)>"
HTMX_PAYLOAD = "<div hx-get=/x hx-trigger=load>"
FORMULA_CHOICES = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)"]


def make_hostile_poll(**kwargs):
    """A poll whose every visitor-supplied text is an attack; returns (poll, owner token)."""
    kwargs = {
        "question": f"{IMG_PAYLOAD} or {HTMX_PAYLOAD}?",
        "description": HTMX_PAYLOAD,
        "choices": [IMG_PAYLOAD, HTMX_PAYLOAD, *FORMULA_CHOICES],
        "dedupe": "none",
    } | kwargs
    return services.poll_create(**kwargs)


def make_hostile_event():
    """An event whose title and questions are attacks, on its first question, open and revealed (so
    every screen shows the visitor's text); returns (event, that question, owner token)."""
    hostile = events.QuestionInput(
        question=f"{IMG_PAYLOAD} or {HTMX_PAYLOAD}?",
        choices=[IMG_PAYLOAD, HTMX_PAYLOAD, *FORMULA_CHOICES],
        dedupe="none",
    )
    event, questions, token = events.event_create(title=f"{IMG_PAYLOAD} {HTMX_PAYLOAD}", questions=[hostile, hostile])
    with TestCase.captureOnCommitCallbacks(execute=True):
        for action in ("next", "open", "reveal"):
            event = events.event_control(event=event, action=action)
    return event, Poll.objects.get(pk=questions[0].pk), token  # as the presenter left it: open


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, {name: value or "" for name, value in attrs}))

    handle_startendtag = handle_starttag


def elements(html: str) -> list[tuple[str, dict[str, str]]]:
    """Every element of `html` as (tag, attributes), parsed as a browser tokenises it."""
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser.elements


def injected_elements(html: str) -> list[tuple[str, dict[str, str]]]:
    """Elements the payloads would create if they were not escaped."""
    return [
        (tag, attrs)
        for tag, attrs in elements(html)
        if "onerror" in attrs or attrs.get("hx-get") == "/x" or (tag == "img" and attrs.get("src") == "x")
    ]


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def htmx_config(html: str) -> dict:
    meta = next(attrs for tag, attrs in elements(html) if tag == "meta" and attrs.get("name") == "htmx-config")
    return json.loads(meta["content"])


def free_port() -> int:
    """A free port in the range this suite may use (8500-8599)."""
    for port in range(8500, 8600):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port in 8500-8599")


def embedded_env(directory: Path, **extra: str) -> dict[str, str]:
    """The environment of a server subprocess on embedded defaults, with its own SQLite file."""
    services = ("DATABASE_URL", "REDIS_URL", "REDIS_SHARD_URLS")
    env = {key: value for key, value in os.environ.items() if key not in services}
    env = {key: value for key, value in env.items() if not key.startswith(("DJANGO_", "PYTEST_"))}
    return env | {"SECRET_KEY": "security-test-" + "x" * 40, "SQLITE_PATH": str(directory / "db.sqlite3")} | extra
