"""Concurrent voters: every attempt a new voter, by the JSON API or the HTML form, each one recorded.

Outcomes: acknowledged (the site confirmed: 201, or the form's 302), refused (any other answer,
with its status) or unknown (timeout or connection error: the vote may or may not count).
"""

import http.client
import json
import queue
import random
import re
import threading
import time
import urllib.parse
import uuid
from dataclasses import asdict, dataclass

from loadtest.site import form_post

TIMEOUT_SECONDS = 10
FORM_SHARE = 0.3  # the rest vote through the API
VOTER_COOKIE = re.compile(r'ct_voter="?([^:;"]+)')


@dataclass
class Attempt:
    t_sent: float  # seconds since the scenario started
    t_done: float
    poll: str
    voter: str  # the form's voter is minted by the site: known only from an answer that set the cookie
    via: str  # api | form
    status: int | None
    outcome: str  # acknowledged | refused | unknown
    retry_after: str | None


def vote_once(host: str, port: int, *, poll: dict, via: str, t0: float) -> Attempt:
    choice = random.choice(poll["choice_ids"])
    connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_SECONDS)
    origin = f"http://{host}:{port}"
    if via == "api":
        voter = f"chaos-{uuid.uuid4().hex}"
        path, body = "/api/votes/", json.dumps({"poll": poll["slug"], "choices": [choice], "voter": voter})
        headers = {"Content-Type": "application/json"}
    else:
        voter = ""
        path = f"/p/{poll['slug']}/vote/"
        body, headers = form_post([("choice", str(choice))], origin=origin)
    t_sent = time.monotonic() - t0
    status, retry_after = None, None
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        status, retry_after = response.status, response.headers.get("Retry-After")
        if via == "form" and (cookie := VOTER_COOKIE.search(response.headers.get("Set-Cookie", ""))):
            voter = cookie.group(1)
    except (OSError, http.client.HTTPException):
        pass
    finally:
        connection.close()
    acknowledged = status == 201 if via == "api" else status == 302
    outcome = "unknown" if status is None else "acknowledged" if acknowledged else "refused"
    return Attempt(t_sent, time.monotonic() - t0, poll["slug"], voter, via, status, outcome, retry_after)


class Voters:
    """`attempts` votes spread evenly over `seconds` by `clients` threads; a late client catches up."""

    def __init__(self, base_url: str, polls: list[dict], *, attempts: int, seconds: float, clients: int) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.polls, self.attempts, self.seconds, self.clients = polls, attempts, seconds, clients
        self.history: list[Attempt] = []
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []

    def start(self, t0: float) -> None:
        self.t0 = t0
        interval = self.seconds / self.attempts
        for number in range(self.attempts):
            self._queue.put((t0 + number * interval, number))
        for _ in range(self.clients):
            thread = threading.Thread(target=self._work, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _work(self) -> None:
        while True:
            try:
                at, number = self._queue.get_nowait()
            except queue.Empty:
                return
            time.sleep(max(0.0, at - time.monotonic()))
            via = "form" if random.random() < FORM_SHARE else "api"
            attempt = vote_once(self.host, self.port, poll=self.polls[number % len(self.polls)], via=via, t0=self.t0)
            with self._lock:
                self.history.append(attempt)

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    @property
    def done(self) -> bool:
        return all(not thread.is_alive() for thread in self._threads)


def write_history(path, history: list[Attempt]) -> None:
    with open(path, "w") as file:
        for attempt in sorted(history, key=lambda a: a.t_sent):
            file.write(json.dumps(asdict(attempt)) + "\n")
