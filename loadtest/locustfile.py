"""CrowdTick's load, two profiles. The hall: phones in a hall, programs on the API, big screens, and
now and then a new poll. The public site: visitors who create polls, vote and read results over
thousands of polls (LOADTEST_MIX "visitor=1", LOADTEST_PROFILE "public").

Run by `make loadtest` (loadtest/run.py) and the CI smoke test, which set these environment
variables (master and workers read the same ones):

    LOADTEST_OUT            run directory: the seeded polls (polls.json), acknowledged votes
                            (acks-<pid>.tsv), polls created (created-<pid>.tsv) and one record
                            per measured step (steps.jsonl, or LOADTEST_RECORD)
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
    LOADTEST_ROUND_SECONDS  a new question every so many seconds (default 60, times the wait scale):
                            the hall's voters all answer it within seconds of each other
    LOADTEST_RUN_ID         prefix of the API voters' keys, unique per run

Every user talks to the site over HTTP and WebSockets only, like a browser or a program would.
"""

import heapq
import os
import random
import re
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlparse

import locust.runners
import websocket  # websocket-client: blocking sockets, which gevent (Locust) makes cooperative
from locust import FastHttpUser, LoadTestShape, between, constant, events, task

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from loadtest.pollbook import Poll, PollBook  # noqa: E402
from loadtest.site import CHOICE_INPUT, MANAGE_LOCATION  # noqa: E402
from loadtest.stepstats import WS, Collector, append_record, window_start  # noqa: E402

# The master drops a worker after this many missed 1 s heartbeats (Locust's default: 3). On a
# 2-core machine shared with the stack, a worker busy spawning users can miss 3 in a row.
locust.runners.HEARTBEAT_LIVENESS = 30

OUT = Path(os.environ.get("LOADTEST_OUT", "loadtest-run"))
RECORD = OUT / os.environ.get("LOADTEST_RECORD", "steps.jsonl")
PROFILE = os.environ.get("LOADTEST_PROFILE", "hall")
RUN_ID = os.environ.get("LOADTEST_RUN_ID") or uuid.uuid4().hex[:8]
WAIT_SCALE = float(os.environ.get("LOADTEST_WAIT_SCALE", "1"))
ROUND_SECONDS = float(os.environ.get("LOADTEST_ROUND_SECONDS", "60")) * WAIT_SCALE
DEFAULT_MIX = "voter=70,api=10,viewer=19,creator=1"

# Share of voters who tap "Vote" again (and must be refused), and who then open the results page.
AGAIN_SHARE = 0.1
RESULTS_SHARE = 0.5
# A vote no screen has shown after this long counts as a failed push.
PUSH_DEADLINE_SECONDS = 10.0
VOTER_COOKIE = "ct_voter"

CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
VERSION = re.compile(r'data-version="(\d+)"')


def pause(low: float, high: float) -> None:
    time.sleep(random.uniform(low, high) * WAIT_SCALE)


def think(low: float, high: float):
    return between(low * WAIT_SCALE, high * WAIT_SCALE)


def until_the_next_question(_user=None) -> float:
    """A hall's rhythm: the speaker asks a new question every ROUND_SECONDS and each person reacts
    2–15 s later, so the votes arrive all at once, as they do at a keynote. Rounds follow the wall
    clock, which every Locust process shares. With no think time (a closed loop) there are no rounds."""
    if ROUND_SECONDS <= 0:
        return 0.0
    now = time.time()
    next_round = (now // ROUND_SECONDS + 1) * ROUND_SECONDS
    return next_round - now + random.uniform(2, 15) * WAIT_SCALE


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


# --- push latency ------------------------------------------------------------------------------


class Screens:
    """The live screens of each poll in this process.

    Each acknowledged vote is timed at one screen of its poll chosen at random, so the
    measured latencies are a fair sample of "vote acknowledged → shown on a screen" without
    one event per vote per screen.
    """

    def __init__(self) -> None:
        self.by_poll: dict[str, list[Viewer]] = defaultdict(list)

    def join(self, slug: str, screen: "Viewer") -> None:
        self.by_poll[slug].append(screen)

    def leave(self, slug: str, screen: "Viewer") -> None:
        if screen in self.by_poll[slug]:
            self.by_poll[slug].remove(screen)

    def vote_acknowledged(self, slug: str, version: int, at: float) -> None:
        screens = self.by_poll.get(slug)
        if screens:
            random.choice(screens).expect(version, at)


SCREENS = Screens()


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


# --- the users ---------------------------------------------------------------------------------


def form_headers(user, page_url: str) -> dict[str, str]:
    """What a browser sends with a form it posts from `page_url` (Django checks Origin and Referer)."""
    return {"Content-Type": "application/x-www-form-urlencoded", "Origin": user.host, "Referer": page_url}


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
    body = {"poll": poll.slug, "choices": poll.pick_choices(), "voter": f"lt-{RUN_ID}-{uuid.uuid4().hex[:20]}"}
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
            body=urlencode([("csrfmiddlewaretoken", token)] + [("choice", c) for c in poll.pick_choices()]),
            headers={
                **form_headers(self, page_url),
                "HX-Request": "true",
                "HX-Current-URL": page_url,
                "HX-Target": "poll-body",
            },
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
        ACKS.write(poll.slug, self.voter_key(), "form")
        SCREENS.vote_acknowledged(poll.slug, int(version.group(1)), time.monotonic())
        return sent

    def voter_key(self) -> str:
        """The key inside the signed voter cookie ("key:timestamp:signature")."""
        for cookie in self.client.cookiejar:
            if cookie.name == VOTER_COOKIE:
                return cookie.value.strip('"').split(":")[0]
        return ""


class Voter(Phone, FastHttpUser):
    """A phone in the hall: at each new question opens a poll, votes through the form as htmx does,
    sometimes taps again.

    The phone keeps its cookies (CSRF and the signed voter cookie) and answers each poll once.
    """

    weight = MIX.get("voter", 0)
    wait_time = until_the_next_question
    network_timeout = 20.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        self.answered = set()
        time.sleep(until_the_next_question())

    @task
    def answer_a_poll(self) -> None:
        poll = self.poll_to_answer()
        sent = self.vote_on_the_page(poll, reading=(1, 5))  # reads the question, picks an answer
        if sent is None:
            return
        if random.random() < AGAIN_SHARE:
            pause(1, 3)
            name = "/p/[slug]/vote/ (again: 409 expected)"
            expect_refusal(self, sent.path, name=name, data=sent.body, headers=sent.headers)
        if random.random() < RESULTS_SHARE:
            pause(1, 3)
            read_results(self, poll, api=False)


class ApiVoter(FastHttpUser):
    """A program voting for one of its users through the JSON API, each vote with its own `voter` key."""

    weight = MIX.get("api", 0)
    wait_time = think(30, 60)
    network_timeout = 20.0
    connection_timeout = 10.0

    @task
    def vote(self) -> None:
        poll = POLLS.pick()
        body = vote_on_the_api(self, poll)
        if body is None:
            return
        if random.random() < AGAIN_SHARE:
            expect_refusal(self, "/api/votes/", name="/api/votes/ (again: 409 expected)", json=body)
        if random.random() < RESULTS_SHARE:
            read_results(self, poll, api=True)


class Viewer(FastHttpUser):
    """A screen showing a poll's live results: loads the results page, then holds its WebSocket.

    Every push carries the tally's version; a vote acknowledged with version N is shown by the
    first push whose version is N or more. Now and then the screen reloads (a new connection).
    """

    weight = MIX.get("viewer", 0)
    wait_time = constant(0)
    network_timeout = 20.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        self.socket: websocket.WebSocket | None = None
        self.slug: str | None = None
        self.shown_version = -1
        self.expected: list[tuple[int, float]] = []  # (version, acknowledged at), smallest version first

    def on_stop(self) -> None:
        self.hang_up()

    @task
    def watch_a_poll(self) -> None:
        poll = POLLS.pick()
        response = self.client.get(f"/p/{poll.slug}/results/", name="/p/[slug]/results/")
        if response.status_code != 200:
            time.sleep(5)
            return
        if not self.connect(poll.slug):
            time.sleep(5)
            return
        self.watch(until=time.monotonic() + random.uniform(120, 600) * WAIT_SCALE)
        self.hang_up()

    def connect(self, slug: str) -> bool:
        parts = urlparse(self.host)
        url = f"ws://{parts.netloc}/ws/polls/{slug}/"
        cookies = "; ".join(f"{cookie.name}={cookie.value}" for cookie in self.client.cookiejar)
        started = time.perf_counter()
        try:
            self.socket = websocket.create_connection(
                url, timeout=self.connection_timeout, origin=self.host, cookie=cookies or None
            )
            first = self.socket.recv()  # the snapshot every connection gets at once
        except (websocket.WebSocketException, OSError) as error:
            fire(self, WS, "/ws/polls/[slug]/ connect + snapshot", (time.perf_counter() - started) * 1000, error)
            self.socket = None
            return False
        fire(self, WS, "/ws/polls/[slug]/ connect + snapshot", (time.perf_counter() - started) * 1000)
        self.socket.settimeout(1.0)
        self.slug = slug
        self.show(first)
        SCREENS.join(slug, self)
        return True

    def watch(self, *, until: float) -> None:
        while time.monotonic() < until:
            try:
                message = self.socket.recv()
            except websocket.WebSocketTimeoutException:
                self.give_up_on_late_votes()
                continue
            except (websocket.WebSocketException, OSError) as error:
                fire(self, WS, "/ws/polls/[slug]/ connection lost", 0, error)
                return
            self.show(message)
            self.give_up_on_late_votes()

    def show(self, message: str) -> None:
        match = VERSION.search(message)
        if not match:
            return
        now = time.monotonic()
        self.shown_version = max(self.shown_version, int(match.group(1)))
        while self.expected and self.expected[0][0] <= self.shown_version:
            _, acknowledged_at = heapq.heappop(self.expected)
            fire(self, WS, "push: vote acknowledged → shown", (now - acknowledged_at) * 1000)

    def expect(self, version: int, acknowledged_at: float) -> None:
        if version <= self.shown_version:
            # The push beat the vote's own answer back to the phone: shown at once.
            fire(self, WS, "push: vote acknowledged → shown", 0.0)
        else:
            heapq.heappush(self.expected, (version, acknowledged_at))

    def give_up_on_late_votes(self) -> None:
        now = time.monotonic()
        late = [entry for entry in self.expected if now - entry[1] > PUSH_DEADLINE_SECONDS]
        if not late:
            return
        self.expected = [entry for entry in self.expected if now - entry[1] <= PUSH_DEADLINE_SECONDS]
        heapq.heapify(self.expected)
        for version, acknowledged_at in late:
            error = PushMissing(f"no push showed version {version} within {PUSH_DEADLINE_SECONDS:.0f} s")
            fire(self, WS, "push: vote acknowledged → shown", (now - acknowledged_at) * 1000, error)

    def hang_up(self) -> None:
        if self.slug:
            SCREENS.leave(self.slug, self)
            # Votes waiting to be timed here go to another screen of the same poll.
            for version, acknowledged_at in self.expected:
                SCREENS.vote_acknowledged(self.slug, version, acknowledged_at)
            self.expected = []
            self.slug = None
        if self.socket is not None:
            try:
                self.socket.close()
            except (websocket.WebSocketException, OSError):
                pass
            self.socket = None
        self.shown_version = -1


def create_a_poll(user, *, typing: tuple[float, float]) -> None:
    """A new poll, half on the landing page's form (typed in for `typing` seconds), half on the API."""
    question = f"Load test {RUN_ID}: which talk next?"
    choices = ["Databases", "WebSockets", "Accessibility", "Caching"]
    via = random.choice(("api", "form"))
    if via == "api":
        poll = create_on_the_api(user, question, choices)
    else:
        poll = create_on_the_page(user, question, choices, typing=typing)
    if poll:
        POLLS.add(poll)
        CREATED.write(poll.slug, via)


def create_on_the_page(user, question: str, choices: list[str], *, typing: tuple[float, float]) -> Poll | None:
    token = csrf_token(user, "/", name="/", form="landing page's create form")
    if not token:
        return None
    pause(*typing)
    body = urlencode(
        [("csrfmiddlewaretoken", token), ("question", question)]
        + [("choices", text) for text in choices]
        + [("results_visibility", "always"), ("dedupe", "browser")]
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
    choice_ids = [int(value) for value in CHOICE_INPUT.findall(page.text or "")]
    return Poll(slug=slug.group(1), choice_ids=choice_ids) if choice_ids else None


def create_on_the_api(user, question: str, choices: list[str]) -> Poll | None:
    with user.client.post(
        "/api/polls/", json={"question": question, "choices": choices}, name="/api/polls/", catch_response=True
    ) as created:
        if created.status_code != 201:
            created.failure(f"creating a poll answered {created.status_code}: {(created.text or '')[:120]}")
            return None
        data = created.json()
    return Poll(slug=data["id"], choice_ids=[choice["id"] for choice in data["choices"]])


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


# A kind weighted 0 in LOADTEST_MIX is left out of the run entirely.
Voter.abstract = MIX.get("voter", 0) <= 0
ApiVoter.abstract = MIX.get("api", 0) <= 0
Viewer.abstract = MIX.get("viewer", 0) <= 0
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
