"""CrowdTick's load, two profiles. The hall: an event run by its presenter, the phones of its
audience joined to it, and now and then a new poll. The public site: visitors who create polls,
vote and read results over thousands of polls (LOADTEST_MIX "visitor=1", LOADTEST_PROFILE "public").

Run by `make loadtest` (loadtest/run.py) and the CI smoke test, which set these environment
variables (master and workers read the same ones):

    LOADTEST_OUT            run directory: the event (event.json: its id, join code, owner token
                            and questions) or the seeded polls (polls.json), acknowledged votes
                            (acks-<pid>.tsv), polls created (created-<pid>.tsv), the presenter's
                            actions (presenter-<pid>.tsv) and one record per measured step
                            (steps.jsonl, or LOADTEST_RECORD)
    LOADTEST_RECORD         the file of the step records in LOADTEST_OUT (default steps.jsonl)
    LOADTEST_PROFILE        "hall" (default): polls created during the run join at the last rank of
                            attention; "public": at a random rank (loadtest/pollbook.py)
    LOADTEST_MIX            user weights, default "voter=70,api=10,viewer=19,creator=1";
                            "visitor=1" is the public site's
    LOADTEST_STEPS          users per step, default "100,250,500,1000,2000,4000"
    LOADTEST_STEP_SECONDS   measured seconds per step (default 60), after
    LOADTEST_SETTLE_SECONDS seconds at the step's user count before measuring (default 10)
    LOADTEST_SPAWN_RATE     users started per second between steps (default 100)
    LOADTEST_WAIT_SCALE     multiplies every think time (default 1: people read, think and tap;
                            0: a closed loop, each user's next request as soon as the last is answered)
    LOADTEST_ROUND_SECONDS  the presenter opens a new question every so many seconds (default 60,
                            times the wait scale), at the same second of the wall clock everywhere
    LOADTEST_WINDOW_SECONDS for so many seconds (default 20, times the wait scale, at least 5): every
                            phone votes in that window
    LOADTEST_RUN_ID         prefix of the API voters' keys, unique per run

Every user talks to the site over HTTP and WebSockets only, like a browser or a program would.
"""

import json
import math
import os
import random
import re
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode, urlparse

import gevent
import locust.runners
import websocket  # websocket-client: blocking sockets, which gevent (Locust) makes cooperative
from locust import FastHttpUser, LoadTestShape, between, constant, events, task
from locust.contrib.fasthttp import FastHttpSession

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from loadtest.pollbook import Poll, PollBook  # noqa: E402
from loadtest.site import (  # noqa: E402
    CHOICE_INPUT,
    MANAGE_LOCATION,
    WORD_INPUT,
    kind_fields,
    poll_entry,
    seed_question,
)
from loadtest.stepstats import PUSH, WS, Collector, append_record, vote_window, window_start  # noqa: E402

# The master drops a worker after this many missed 1 s heartbeats (Locust's default: 3). On a
# 2-core machine shared with the stack, a worker busy spawning users can miss 3 in a row.
locust.runners.HEARTBEAT_LIVENESS = 30

OUT = Path(os.environ.get("LOADTEST_OUT", "loadtest-run"))
RECORD = OUT / os.environ.get("LOADTEST_RECORD", "steps.jsonl")
PROFILE = os.environ.get("LOADTEST_PROFILE", "hall")
RUN_ID = os.environ.get("LOADTEST_RUN_ID") or uuid.uuid4().hex[:8]
WAIT_SCALE = float(os.environ.get("LOADTEST_WAIT_SCALE", "1"))
ROUND_SECONDS = float(os.environ.get("LOADTEST_ROUND_SECONDS", "60")) * WAIT_SCALE
WINDOW_SECONDS = vote_window(
    float(os.environ.get("LOADTEST_WINDOW_SECONDS", "20")),
    round_seconds=float(os.environ.get("LOADTEST_ROUND_SECONDS", "60")),
    wait_scale=WAIT_SCALE,
)
DEFAULT_MIX = "voter=70,api=10,viewer=19,creator=1"

# Share of voters who tap "Vote" again (and must be refused), and of API voters who then read the results.
AGAIN_SHARE = 0.1
RESULTS_SHARE = 0.5
# A phone votes this far into the window after it sees a question open (2–15 s of 20), and never in its
# last quarter (5 s of 20): a vote sent later might arrive after the window, which answers 403.
REACTION = (0.1, 0.75)
LAST_MOMENT = 0.25
# A question opened while a phone's socket was up, which that phone has not shown after this long,
# counts as a failed push.
PUSH_DEADLINE_SECONDS = 10.0
VOTER_COOKIE = "ct_voter"
OPENED_MESSAGE = "question opened"  # from the presenter (master) to the phones (workers)

CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
VERSION = re.compile(r'data-version="(\d+)"')


def pause(low: float, high: float) -> None:
    time.sleep(random.uniform(low, high) * WAIT_SCALE)


def think(low: float, high: float):
    return between(low * WAIT_SCALE, high * WAIT_SCALE)


def parse_mix(text: str) -> dict[str, int]:
    mix = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        mix[name.strip()] = int(weight)
    unknown = set(mix) - {"voter", "api", "viewer", "creator", "visitor"}
    if unknown:
        raise ValueError(f"LOADTEST_MIX: unknown user kinds {sorted(unknown)}")
    return mix


MIX = parse_mix(os.environ.get("LOADTEST_MIX") or DEFAULT_MIX)


# --- the polls ---------------------------------------------------------------------------------

# The hall: new polls join at the last rank. The public site: at a random one (loadtest/pollbook.py).
POLLS = PollBook(new_at_random_rank=PROFILE == "public")
if (OUT / "polls.json").exists():
    POLLS.load(OUT / "polls.json")
# The hall's event (loadtest/run.py creates it): id, code, token (the presenter's alone) and questions.
EVENT = json.loads((OUT / "event.json").read_text()) if (OUT / "event.json").exists() else None


class RunLog:
    """One line per event, per process (Locust forks its workers after importing this file), read after the run."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._file = None

    def write(self, *fields: str) -> None:
        if self._file is None:
            self._file = open(OUT / f"{self.name}-{os.getpid()}.tsv", "a", buffering=1)  # noqa: SIM115
        self._file.write("\t".join(fields) + "\n")


# Every vote the site acknowledged (2xx): slug, voter key, form|api; the integrity check reads them.
ACKS = RunLog("acks")
# Every poll created during the run: slug, form|api.
CREATED = RunLog("created")


def fire(user, request_type: str, name: str, milliseconds: float, error: Exception | None = None) -> None:
    user.environment.events.request.fire(
        request_type=request_type,
        name=name,
        response_time=milliseconds,
        response_length=0,
        exception=error,
        context={},
    )


class PushMissing(Exception):
    pass


def timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


# --- the users ---------------------------------------------------------------------------------


def form_headers(user, page_url: str) -> dict[str, str]:
    """What a browser sends with a form it posts from `page_url` (Django checks Origin and Referer)."""
    return {"Content-Type": "application/x-www-form-urlencoded", "Origin": user.host, "Referer": page_url}


def htmx_form_headers(user, page_url: str, *, target: str) -> dict[str, str]:
    """A form htmx posts from `page_url`, its answer swapped into the element `target` (an id)."""
    return form_headers(user, page_url) | {"HX-Request": "true", "HX-Current-URL": page_url, "HX-Target": target}


def csrf_token(user, path: str, *, name: str, form: str) -> str | None:
    """Opens a page with a form, as a browser would; the form's CSRF token (and its cookie, in the jar)."""
    with user.client.get(path, name=name, catch_response=True) as page:
        token = CSRF_FIELD.search(page.text or "")
        if page.status_code == 200 and not token:
            page.failure(f"the {form} is missing")
    return token.group(1) if token else None


def expect_refusal(user, path: str, *, name: str, **request) -> None:
    """The same vote again: the site must refuse it with 409."""
    with user.client.post(path, name=name, catch_response=True, **request) as again:
        if again.status_code == 409:
            again.success()
        else:
            again.failure(f"a repeated vote answered {again.status_code}, not 409")


def read_results(user, poll: Poll, *, api: bool) -> None:
    if api:
        user.client.get(f"/api/polls/{poll.slug}/results/", name="/api/polls/[id]/results/")
    else:
        user.client.get(f"/p/{poll.slug}/results/", name="/p/[slug]/results/")


def vote_on_the_api(user, poll: Poll) -> dict | None:
    """A program's vote for one of its users, with its own `voter` key; the body sent, once acknowledged."""
    body = {"poll": poll.slug, **poll.api_answer(), "voter": f"lt-{RUN_ID}-{uuid.uuid4().hex[:20]}"}
    with user.client.post("/api/votes/", json=body, name="/api/votes/", catch_response=True) as vote:
        if vote.status_code != 201:
            vote.failure(f"the vote answered {vote.status_code}: {(vote.text or '')[:120]}")
            return None
    ACKS.write(poll.slug, body["voter"], "api")
    return body


@dataclass(frozen=True)
class FormVote:
    """A vote the site acknowledged through the form, as sent: enough to send it again."""

    path: str
    body: str
    headers: dict[str, str]


class Phone:
    """A browser's side of voting through the form, for a user class that keeps `answered`, the polls
    its cookie jar has voted in: it answers each poll once; when it has answered them all, someone
    new picks it up (a fresh cookie jar)."""

    answered: set[str]

    def poll_to_answer(self) -> Poll:
        poll = POLLS.pick(exclude=self.answered)
        if poll is None:
            self.client.cookiejar.clear()
            self.answered.clear()
            poll = POLLS.pick()
        return poll

    def vote_on_the_page(self, poll: Poll, *, reading: tuple[float, float]) -> FormVote | None:
        """Opens the poll's page (the CSRF token), reads for `reading` seconds, votes as htmx does."""
        page_url = f"{self.host}/p/{poll.slug}/"
        token = csrf_token(self, f"/p/{poll.slug}/", name="/p/[slug]/", form="poll page's vote form")
        if not token:
            return None
        pause(*reading)
        sent = FormVote(
            path=f"/p/{poll.slug}/vote/",
            body=urlencode([("csrfmiddlewaretoken", token), *poll.form_fields()]),
            headers=htmx_form_headers(self, page_url, target="poll-body"),
        )
        with self.client.post(
            sent.path, data=sent.body, headers=sent.headers, name="/p/[slug]/vote/", catch_response=True
        ) as vote:
            version = VERSION.search(vote.text or "") if vote.status_code == 200 else None
            if vote.status_code == 200 and not version:
                vote.failure("the vote's answer shows no results")
        if not version:
            return None
        self.answered.add(poll.slug)
        ACKS.write(poll.slug, voter_key(self), "form")
        return sent


def voter_key(user) -> str:
    """The key inside the signed voter cookie ("key:timestamp:signature")."""
    for cookie in user.client.cookiejar:
        if cookie.name == VOTER_COOKIE:
            return cookie.value.strip('"').split(":")[0]
    return ""


# --- the hall: an event, its presenter and its phones ----------------------------------------------

PHONE_STATE = re.compile(r'<div class="live-state[^>]*>')
STATE_ATTRIBUTE = re.compile(r'data-([a-z-]+)="([^"]*)"')
QUESTION_INPUT = re.compile(r'name="question" value="([^"]+)"')
PICK_UP_TO = re.compile(r"Pick up to (\d+)\.")
# A rating's value as its button shows it: the text after the radio button.
SCALE_VALUE = re.compile(r'class="scale-option"><input type="radio" name="choice" [^>]*><span dir="auto">(-?\d+)<')
SOCKET_CSRF = re.compile(r'"X-CSRFToken": "([^"]+)"')


@dataclass(frozen=True)
class PhoneScreen:
    """What a phone shows, read from its region (the page, a push or a vote's answer)."""

    state: int  # the event's version (the high bits of data-version): every change of the presenter's grows it
    open: bool
    closes_at: float | None  # the window's end, as the server set it
    question: Poll | None  # the vote form's question, choices and "pick up to", when the phone shows the form
    results: bool  # revealed

    @classmethod
    def read(cls, html: str) -> "PhoneScreen | None":
        root = PHONE_STATE.search(html or "")
        if root is None:
            return None
        data = dict(STATE_ATTRIBUTE.findall(root.group(0)))
        question = QUESTION_INPUT.search(html)
        return cls(
            state=int(data.get("version", "0")) >> 32,
            open=data.get("poll-open") == "1",
            closes_at=timestamp(data["closes-at"]) if data.get("closes-at") else None,
            question=cls.form_question(question.group(1), html) if question else None,
            results='id="results"' in html,
        )

    @staticmethod
    def form_question(slug: str, html: str) -> Poll:
        """The question as its vote form shows it: choices and "pick up to", a rating's values, or a word
        cloud's text boxes."""
        word_boxes = len(WORD_INPUT.findall(html))
        scale_values = SCALE_VALUE.findall(html)
        pick_up_to = PICK_UP_TO.search(html)
        return Poll(
            slug=slug,
            choice_ids=[int(value) for value in CHOICE_INPUT.findall(html)],
            max_choices=int(pick_up_to.group(1)) if pick_up_to else 1,
            kind="words" if word_boxes else "scale" if scale_values else "choice",
            max_words=word_boxes,
            scale_min=int(scale_values[0]) if scale_values else 1,
        )

    def last_moment(self) -> float:
        """The latest time a phone sends a vote in this window (no window: any time)."""
        return self.closes_at - LAST_MOMENT * WINDOW_SECONDS if self.closes_at and WINDOW_SECONDS else math.inf


@dataclass(frozen=True)
class Ballot:
    """A vote a phone means to send in the window of the event state `state`, at `at` (wall clock)."""

    state: int
    question: Poll
    at: float


@dataclass(frozen=True)
class Opening:
    """A question the presenter opened: the event state it made and when the server opened it."""

    state: int
    opened_at: float


OPENED: Opening | None = None  # the latest, as the presenter announced it to this process


class EventPhone(FastHttpUser):
    """A phone in the hall: joins the event (its page, then its socket `/ws/events/<code>/`), follows
    the presenter, and votes once in each question's window, 2–15 s after it sees the question open and
    never in the window's last 5 s. A phone that meets a question its browser answered before (the
    presenter went back to it) is handed to someone new, with a fresh cookie jar; in a closed loop that
    happens after every vote.

    Each phone times the push that shows it a question opened, from the moment the server opened it
    (the window's end the phone shows, less the window); a question that opened while its socket was
    up and that it has not shown after 10 s counts as a failed push.
    """

    abstract = True
    wait_time = constant(0)
    network_timeout = 20.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        self.socket: websocket.WebSocket | None = None
        self.connected_at = math.inf  # wall clock: when its socket's snapshot arrived
        self.csrf = ""
        self.shown: PhoneScreen | None = None
        self.ballot: Ballot | None = None
        self.voted: set[int] = set()  # the event states (openings) this person voted in
        self.missed: set[int] = set()  # openings already counted as failed pushes
        self.handed_over = False

    def on_stop(self) -> None:
        self.hang_up()

    def stay_seconds(self) -> float:
        """How long the person keeps the page open before reloading it."""
        return math.inf

    def vote(self, ballot: Ballot) -> None:
        raise NotImplementedError

    def shown_results(self) -> None:
        """The presenter revealed the results on this phone."""

    @task
    def take_part(self) -> None:
        if not self.join():
            time.sleep(5)
            return
        leave_at = time.monotonic() + self.stay_seconds()
        while self.socket is not None and not self.handed_over:
            self.listen()
            self.check_pushes()
            if self.ballot is not None and time.time() >= self.ballot.at:
                self.send_ballot()
            if time.monotonic() >= leave_at:
                break
        self.hang_up()
        if self.handed_over:  # someone new takes the phone
            self.client.cookiejar.clear()
            self.voted.clear()
            self.handed_over = False

    def join(self) -> bool:
        """Opens the phone page (its CSRF token and cookie), then its socket."""
        with self.client.get(f"/e/{EVENT['code']}/", name="/e/[code]/", catch_response=True) as page:
            token = SOCKET_CSRF.search(page.text or "")
            if page.status_code == 200 and not (token and PhoneScreen.read(page.text)):
                page.failure("the phone page shows no event")
        if not token:
            return False
        self.csrf = token.group(1)
        return self.connect()

    def connect(self) -> bool:
        url = f"ws://{urlparse(self.host).netloc}/ws/events/{EVENT['code']}/"
        cookies = "; ".join(f"{cookie.name}={cookie.value}" for cookie in self.client.cookiejar)
        started = time.perf_counter()
        try:
            self.socket = websocket.create_connection(
                url, timeout=self.connection_timeout, origin=self.host, cookie=cookies or None
            )
            first = self.socket.recv()  # the snapshot every connection gets at once
        except (websocket.WebSocketException, OSError) as error:
            fire(self, WS, "/ws/events/[code]/ connect + snapshot", (time.perf_counter() - started) * 1000, error)
            self.hang_up()
            return False
        fire(self, WS, "/ws/events/[code]/ connect + snapshot", (time.perf_counter() - started) * 1000)
        self.connected_at = time.time()
        self.show(PhoneScreen.read(first), pushed=False)
        return True

    def hang_up(self) -> None:
        if self.socket is not None:
            try:
                self.socket.close()
            except (websocket.WebSocketException, OSError):
                pass
        self.socket, self.connected_at, self.ballot = None, math.inf, None

    def listen(self) -> None:
        """Waits up to a second (less when a ballot is due) for a push, and shows it."""
        wait = 1.0 if self.ballot is None else min(1.0, max(0.01, self.ballot.at - time.time()))
        self.socket.settimeout(wait)
        try:
            message = self.socket.recv()
        except websocket.WebSocketTimeoutException:
            return
        except (websocket.WebSocketException, OSError) as error:
            fire(self, WS, "/ws/events/[code]/ connection lost", 0, error)
            self.hang_up()
            return
        self.show(PhoneScreen.read(message), pushed=True)

    def show(self, screen: PhoneScreen | None, *, pushed: bool) -> None:
        before = self.shown
        if screen is None or (before is not None and screen.state < before.state):
            return
        self.shown = screen
        changed = before is None or screen.state > before.state
        if pushed and changed and screen.open and screen.closes_at and WINDOW_SECONDS:
            opened_at = screen.closes_at - WINDOW_SECONDS
            if self.connected_at < opened_at:
                fire(self, WS, PUSH, (time.time() - opened_at) * 1000)
        if not screen.open:
            self.ballot = None
            if changed and screen.results:
                self.shown_results()
        elif screen.state not in self.voted:
            if screen.question is None:  # "your answer is in": this browser answered the question before
                self.handed_over = True
            elif self.ballot is None or self.ballot.state != screen.state:
                self.plan(screen)

    def plan(self, screen: PhoneScreen) -> None:
        now = time.time()
        at = now + random.uniform(*REACTION) * (WINDOW_SECONDS or 0)
        if now < screen.last_moment():  # else too late for this one: the person sits it out
            self.ballot = Ballot(screen.state, screen.question, min(at, screen.last_moment()))

    def send_ballot(self) -> None:
        ballot, self.ballot = self.ballot, None
        if self.shown is None or self.shown.state != ballot.state:
            return  # the presenter moved on
        self.voted.add(ballot.state)
        self.vote(ballot)
        if WINDOW_SECONDS is None:
            self.handed_over = True  # a closed loop: the next person votes at once

    def again_in_time(self) -> bool:
        """Whether to send the same vote again (1–3 s later, while the window has time for it)."""
        return random.random() < AGAIN_SHARE and time.time() + 3 * WAIT_SCALE < self.shown.last_moment()

    def check_pushes(self) -> None:
        opened = OPENED
        if opened is None or opened.state in self.missed or self.connected_at >= opened.opened_at:
            return
        if self.shown is not None and self.shown.state >= opened.state:
            return
        late = time.time() - opened.opened_at
        if late > PUSH_DEADLINE_SECONDS:
            self.missed.add(opened.state)
            error = PushMissing(f"no push showed the question opened within {PUSH_DEADLINE_SECONDS:.0f} s")
            fire(self, WS, PUSH, late * 1000, error)


class Voter(EventPhone):
    """A phone voting through the page's form as htmx sends it. The answer replaces the content of the
    phone's region; its socket stays open and is told "voted" (live.js), and sends the answered screen
    from then on. One time in ten the phone taps again and must be refused (409)."""

    weight = MIX.get("voter", 0)

    def vote(self, ballot: Ballot) -> None:
        page_url = f"{self.host}/e/{EVENT['code']}/"
        sent = FormVote(
            path=f"/e/{EVENT['code']}/vote/",
            body=urlencode(
                [("csrfmiddlewaretoken", self.csrf), ("question", ballot.question.slug), *ballot.question.form_fields()]
            ),
            headers=htmx_form_headers(self, page_url, target="live-region"),
        )
        with self.client.post(
            sent.path, data=sent.body, headers=sent.headers, name="/e/[code]/vote/", catch_response=True
        ) as answer:
            answered = answer.status_code == 200 and "event-answered" in (answer.text or "")
            if answer.status_code == 200 and not answered:
                answer.failure("the vote's answer does not say the answer is in")
        if not answered:
            return
        ACKS.write(ballot.question.slug, voter_key(self), "form")
        if WINDOW_SECONDS is None:
            return  # a closed loop: someone new takes the phone (send_ballot)
        if self.again_in_time():
            pause(1, 3)
            expect_refusal(
                self, sent.path, name="/e/[code]/vote/ (again: 409 expected)", data=sent.body, headers=sent.headers
            )
        self.show(PhoneScreen.read(answer.text), pushed=False)
        self.tell_the_socket()

    def tell_the_socket(self) -> None:
        """As live.js does after a vote's answer: the socket stays open and is told, so it sends this
        phone the answered screen from then on."""
        if self.socket is None:
            return
        try:
            self.socket.send("voted")
        except (websocket.WebSocketException, OSError) as error:
            fire(self, WS, "/ws/events/[code]/ connection lost", 0, error)
            self.hang_up()


class Viewer(Voter):
    """A phone like the voter's whose person reloads the page every 2–10 minutes (a new page and socket)."""

    weight = MIX.get("viewer", 0)

    def stay_seconds(self) -> float:
        return random.uniform(120, 600) * WAIT_SCALE


class ApiVoter(EventPhone):
    """A phone whose app votes through `POST /api/votes/` with the question's id and a `voter` key of its
    own, repeats one vote in ten (409 expected), and reads `GET /api/polls/<id>/results/` one time in
    two once the presenter reveals them."""

    weight = MIX.get("api", 0)

    def on_start(self) -> None:
        super().on_start()
        self.last_question: Poll | None = None

    def vote(self, ballot: Ballot) -> None:
        body = vote_on_the_api(self, ballot.question)
        if body is None:
            return
        self.last_question = ballot.question
        if WINDOW_SECONDS is not None and self.again_in_time():
            pause(1, 3)
            expect_refusal(self, "/api/votes/", name="/api/votes/ (again: 409 expected)", json=body)

    def shown_results(self) -> None:
        question, self.last_question = self.last_question, None
        if question is not None and random.random() < RESULTS_SHARE:
            pause(1, 5)
            read_results(self, question, api=True)


class Presenter:
    """The event's presenter: at each round, a second after it starts, `next` (back to the first question
    with `goto` after the last), `open` for the window, then `reveal` once the window is over. In a
    closed loop, one question opened for the whole run, without a window. A question it finds open
    when it starts is closed first, so no phone votes before the first round.

    It runs in Locust's master process, not in a worker: busy phones hold up a worker's greenlets, not
    the master's, so the rounds keep to the wall clock. Its calls go through Locust's request event like
    the phones' requests, into the step being measured. It tells the workers when a question opened, so
    their phones can tell a missing push.
    """

    def __init__(self, environment) -> None:
        self.environment = environment
        self.client = FastHttpSession(
            environment.host, environment.events.request, user=None, network_timeout=20.0, connection_timeout=10.0
        )
        self.questions = [question["slug"] for question in EVENT["questions"]]
        self.state: dict | None = None
        self.log = RunLog("presenter")  # its actions: time, action, the question on screen

    def run(self) -> None:
        self.read()
        if (self.state or {}).get("phase") == "open":
            self.control("close")  # left open without a window by the mix ceiling's closed loop
        if WINDOW_SECONDS is None:
            if self.next_question():
                self.control("open")
            return
        while True:
            now = time.time()
            gevent.sleep((now // ROUND_SECONDS + 1) * ROUND_SECONDS + 1 - now)
            if not self.next_question():
                continue
            opened = self.control("open", seconds=WINDOW_SECONDS)
            if opened is None or not opened["closes_at"]:
                continue
            closes_at = timestamp(opened["closes_at"])
            self.environment.runner.send_message(
                OPENED_MESSAGE, {"state": opened["version"], "opened_at": closes_at - WINDOW_SECONDS}
            )
            gevent.sleep(max(0.0, closes_at + 0.5 - time.time()))
            self.control("reveal")

    def read(self) -> None:
        with self.client.get(f"/api/events/{EVENT['id']}/", name="/api/events/[id]/", catch_response=True) as page:
            if page.status_code == 200:
                self.state = page.json()["state"]

    def next_question(self) -> bool:
        index = (self.state or {}).get("index")
        if index is not None and index + 1 >= len(self.questions):
            return self.control("goto", question=self.questions[0]) is not None
        return self.control("next") is not None

    def control(self, action: str, **fields) -> dict | None:
        with self.client.post(
            f"/api/events/{EVENT['id']}/control/",
            json={"action": action, **fields},
            headers={"Authorization": f"Bearer {EVENT['token']}"},
            name=f"/api/events/[id]/control/ ({action})",
            catch_response=True,
        ) as answer:
            if answer.status_code != 200:
                answer.failure(f"the presenter's {action} answered {answer.status_code}: {(answer.text or '')[:120]}")
                return None
            self.state = answer.json()["state"]
        self.log.write(f"{time.time():.3f}", action, self.state["active"] or "")
        return self.state


PRESENTING: gevent.Greenlet | None = None


@events.init.add_listener
def _listen_for_openings(environment, **_kwargs) -> None:
    if environment.runner is not None and not isinstance(environment.runner, locust.runners.MasterRunner):
        environment.runner.register_message(OPENED_MESSAGE, _question_opened)


def _question_opened(environment, msg, **_kwargs) -> None:
    global OPENED
    OPENED = Opening(state=msg.data["state"], opened_at=msg.data["opened_at"])


@events.test_start.add_listener
def _start_presenting(environment, **_kwargs) -> None:
    global PRESENTING
    if EVENT is not None and not isinstance(environment.runner, locust.runners.WorkerRunner):
        PRESENTING = gevent.spawn(Presenter(environment).run)


@events.test_stop.add_listener
def _stop_presenting(environment, **_kwargs) -> None:
    if PRESENTING is not None:
        PRESENTING.kill(block=False)


def create_a_poll(user, *, typing: tuple[float, float]) -> None:
    """A new poll, half on the landing page's form (typed in for `typing` seconds), half on the API; of
    each kind in the seeded polls' shares (one in four a rating, one in four a word cloud)."""
    question = seed_question(random.randint(1, 4))
    question["question"] = f"Load test {RUN_ID}: {question['question']}"
    via = random.choice(("api", "form"))
    if via == "api":
        poll = create_on_the_api(user, question)
    else:
        poll = create_on_the_page(user, question, typing=typing)
    if poll:
        POLLS.add(poll)
        CREATED.write(poll.slug, via)


def create_on_the_page(user, question: dict, *, typing: tuple[float, float]) -> Poll | None:
    token = csrf_token(user, "/", name="/", form="landing page's create form")
    if not token:
        return None
    pause(*typing)
    body = urlencode(
        [("csrfmiddlewaretoken", token), ("question", question["question"])]
        + [("choices", text) for text in question.get("choices", ())]
        + [("results_visibility", "always"), ("dedupe", "browser"), *kind_fields(question)]
    )
    with user.client.post(
        "/polls/new/",
        data=body,
        headers=form_headers(user, f"{user.host}/"),
        name="/polls/new/",
        allow_redirects=False,
        catch_response=True,
    ) as created:
        location = created.headers.get("Location", "") if created.status_code == 302 else ""
        slug = MANAGE_LOCATION.search(location)
        if not slug:
            created.failure(f"creating a poll answered {created.status_code}, not a redirect to its owner page")
            return None
        created.success()
    user.client.get(location, name="/p/[slug]/manage/[token]/")
    page = user.client.get(f"/p/{slug.group(1)}/", name="/p/[slug]/")
    poll = PhoneScreen.form_question(slug.group(1), page.text or "")
    return poll if poll.choice_ids or poll.max_words else None


def create_on_the_api(user, question: dict) -> Poll | None:
    with user.client.post("/api/polls/", json=question, name="/api/polls/", catch_response=True) as created:
        if created.status_code != 201:
            created.failure(f"creating a poll answered {created.status_code}: {(created.text or '')[:120]}")
            return None
        data = created.json()
    return Poll.from_entry(poll_entry(data))


class Creator(FastHttpUser):
    """Now and then someone creates a poll: a person on the landing page, or a program on the API."""

    weight = MIX.get("creator", 0)
    wait_time = think(30, 90)
    network_timeout = 20.0
    connection_timeout = 10.0

    @task
    def create(self) -> None:
        create_a_poll(self, typing=(5, 15))  # types the question and the choices


class Visitor(Phone, FastHttpUser):
    """Someone on a public polling site: creates a poll, votes, reads results, in the ratio 1 : 5 : 3,
    1–5 s apart. Half of each goes through the pages (the vote as htmx sends it, the landing page's
    form), half through the JSON API. The polls are every poll this process knows, seeded or created
    during the run, with the public site's long tail of attention (loadtest/pollbook.py)."""

    weight = MIX.get("visitor", 0)
    wait_time = think(1, 5)
    network_timeout = 20.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        self.answered = set()

    @task(1)
    def create(self) -> None:
        create_a_poll(self, typing=(0, 0))  # the 1–5 s before the next action is all the time it takes

    @task(5)
    def vote(self) -> None:
        if random.random() < 0.5:
            self.vote_on_the_page(self.poll_to_answer(), reading=(0, 0))
        else:
            vote_on_the_api(self, POLLS.pick())

    @task(3)
    def read(self) -> None:
        read_results(self, POLLS.pick(), api=random.random() < 0.5)


# A kind weighted 0 in LOADTEST_MIX is left out of the run entirely; the phones need the hall's event.
Voter.abstract = MIX.get("voter", 0) <= 0 or EVENT is None
ApiVoter.abstract = MIX.get("api", 0) <= 0 or EVENT is None
Viewer.abstract = MIX.get("viewer", 0) <= 0 or EVENT is None
Creator.abstract = MIX.get("creator", 0) <= 0
Visitor.abstract = MIX.get("visitor", 0) <= 0


# --- measuring each step -----------------------------------------------------------------------

COLLECTOR = Collector()


@events.request.add_listener
def _record_request(request_type, name, response_time, exception, **_kwargs) -> None:
    error = None if exception is None else (str(exception) or type(exception).__name__)
    COLLECTOR.record(request_type, name, response_time or 0.0, error)


@events.report_to_master.add_listener
def _send_to_master(client_id, data) -> None:
    data["step_series"] = COLLECTOR.drain()


@events.worker_report.add_listener
def _receive_from_worker(client_id, data) -> None:
    if "step_series" in data:
        COLLECTOR.merge(data["step_series"])


@dataclass(frozen=True)
class StepPlan:
    steps: list[int]
    measure_seconds: float
    settle_seconds: float
    spawn_rate: float
    align_to_rounds: bool

    @classmethod
    def from_env(cls) -> "StepPlan":
        return cls(
            steps=[int(n) for n in os.environ.get("LOADTEST_STEPS", "100,250,500,1000,2000,4000").split(",")],
            measure_seconds=float(os.environ.get("LOADTEST_STEP_SECONDS", "60")),
            settle_seconds=float(os.environ.get("LOADTEST_SETTLE_SECONDS", "10")),
            spawn_rate=float(os.environ.get("LOADTEST_SPAWN_RATE", "100")),
            align_to_rounds=os.environ.get("LOADTEST_ALIGN_TO_ROUNDS", "1") == "1",
        )


class SteppedLoad(LoadTestShape):
    """Steps the users up; at each step: reach the count, settle, measure a window, record it.

    Runs on the master. The window starts after the settle time, which is longer than the
    workers' report interval (3 s), so no request of the ramp leaks into it, and then at the start
    of the next question round (`window_start`). Equal steps in a row (`make soak`: the same users
    for many windows) follow each other with no ramp and no gap.
    """

    def __init__(self) -> None:
        super().__init__()
        self.plan = StepPlan.from_env()
        self.index = 0
        self.phase = "ramp"
        self.since = time.monotonic()
        self.window_started_at = 0.0
        self.measure_from = 0.0
        self.ramp_from = 0

    def tick(self):
        if self.index >= len(self.plan.steps):
            return None
        users = self.plan.steps[self.index]
        now = time.monotonic()
        if self.phase == "ramp" and (self.reached(users) or now - self.since > self.ramp_timeout(users)):
            self.phase, self.since = "settle", now
        elif self.phase == "settle" and now - self.since >= self.plan.settle_seconds:
            self.phase = "wait for the round"
            aligned = self.plan.align_to_rounds
            self.measure_from = window_start(time.time(), round_seconds=ROUND_SECONDS, aligned=aligned)
        if self.phase == "wait for the round" and time.time() >= self.measure_from:
            COLLECTOR.reset()
            self.phase, self.since, self.window_started_at = "measure", now, time.time()
        elif self.phase == "measure" and now - self.since >= self.plan.measure_seconds:
            self.record(users, seconds=now - self.since)
            self.index += 1
            if self.index >= len(self.plan.steps):
                return None
            if self.plan.steps[self.index] == users:
                # The same users again (a soak): the next window starts at once, so no request falls between two.
                COLLECTOR.reset()
                self.since, self.window_started_at = now, time.time()
            else:
                self.phase, self.since, self.ramp_from = "ramp", now, users
            users = self.plan.steps[self.index]
        return users, self.plan.spawn_rate

    def reached(self, users: int) -> bool:
        return self.runner.state == "running" and self.runner.user_count >= users

    def ramp_timeout(self, users: int) -> float:
        return (users - self.ramp_from) / self.plan.spawn_rate + 60

    def record(self, users: int, *, seconds: float) -> None:
        summary = COLLECTOR.summary(seconds)
        record = {
            "step": self.index + 1,
            "users": users,
            "users_running": self.runner.user_count,
            "user_classes": dict(
                getattr(self.runner, "reported_user_classes_count", None) or self.runner.user_classes_count
            ),
            "started_at": self.window_started_at,
            "ended_at": time.time(),
            **summary,
        }
        append_record(RECORD, record)
        http = summary["http"]
        window = f"step {record['step']}" if RECORD.name == "steps.jsonl" else RECORD.stem  # e.g. the mix ceiling
        print(
            f"loadtest: {PROFILE} {window} at {users} users: {http['rps']:.0f} req/s, "
            f"p50 {http['p50']} ms, p95 {http['p95']} ms, p99 {http['p99']} ms, "
            f"errors {summary['all']['error_pct']:.2f}%",
            flush=True,
        )
