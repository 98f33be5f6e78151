"""CrowdTick's load: phones in a hall, programs on the API, big screens, and now and then a new poll.

Run by `make loadtest` (loadtest/run.py) and the CI smoke test, which set these environment
variables (master and workers read the same ones):

    LOADTEST_OUT            run directory: the seeded polls (polls.json), acknowledged votes
                            (acks-<pid>.tsv) and one record per measured step (steps.jsonl)
    LOADTEST_MIX            user weights, default "voter=70,api=10,viewer=19,creator=1"
    LOADTEST_STEPS          users per step, default "100,250,500,1000,2000,4000"
    LOADTEST_STEP_SECONDS   measured seconds per step (default 60), after
    LOADTEST_SETTLE_SECONDS seconds at the step's user count before measuring (default 10)
    LOADTEST_SPAWN_RATE     users started per second between steps (default 100)
    LOADTEST_WAIT_SCALE     multiplies every think time (default 1: people read, think and tap)
    LOADTEST_ROUND_SECONDS  a new question every so many seconds (default 60, times the wait scale):
                            the hall's voters all answer it within seconds of each other
    LOADTEST_RUN_ID         prefix of the API voters' keys, unique per run

Every user talks to the site over HTTP and WebSockets only, like a browser or a program would.
"""

import heapq
import json
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
from loadtest.stepstats import WS, Collector, append_record, window_start  # noqa: E402

# The master drops a worker after this many missed 1 s heartbeats (Locust's default: 3). On a
# 2-core machine shared with the stack, a worker busy spawning users can miss 3 in a row.
locust.runners.HEARTBEAT_LIVENESS = 30

OUT = Path(os.environ.get("LOADTEST_OUT", "loadtest-run"))
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
CHOICE_INPUT = re.compile(r'name="choice" value="(\d+)"')
VERSION = re.compile(r'data-version="(\d+)"')
MANAGE_LOCATION = re.compile(r"/p/([^/]+)/manage/")


def pause(low: float, high: float) -> None:
    time.sleep(random.uniform(low, high) * WAIT_SCALE)


def think(low: float, high: float):
    return between(low * WAIT_SCALE, high * WAIT_SCALE)


def until_the_next_question(_user=None) -> float:
    """A hall's rhythm: the speaker asks a new question every ROUND_SECONDS and each person reacts
    2–15 s later, so the votes arrive all at once, as they do at a keynote. Rounds follow the wall
    clock, which every Locust process shares."""
    now = time.time()
    next_round = (now // ROUND_SECONDS + 1) * ROUND_SECONDS
    return next_round - now + random.uniform(2, 15) * WAIT_SCALE


def parse_mix(text: str) -> dict[str, int]:
    mix = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        mix[name.strip()] = int(weight)
    unknown = set(mix) - {"voter", "api", "viewer", "creator"}
    if unknown:
        raise ValueError(f"LOADTEST_MIX: unknown user kinds {sorted(unknown)}")
    return mix


MIX = parse_mix(os.environ.get("LOADTEST_MIX") or DEFAULT_MIX)


# --- the polls ---------------------------------------------------------------------------------


@dataclass
class Poll:
    slug: str
    choice_ids: list[int]
    max_choices: int = 1

    def pick_choices(self) -> list[int]:
        how_many = random.randint(1, self.max_choices)
        return random.sample(self.choice_ids, how_many)


class PollBook:
    """The polls this process knows: the seeded ones, then those its creators made.

    Attention is uneven, as in a real event: the first poll (the keynote's) draws the most
    voters and screens, the n-th one 1/n as many.
    """

    def __init__(self) -> None:
        self.polls: list[Poll] = []
        self.weights: list[float] = []

    def load(self, path: Path) -> None:
        for entry in json.loads(path.read_text()):
            self.add(Poll(slug=entry["slug"], choice_ids=entry["choice_ids"], max_choices=entry["max_choices"]))

    def add(self, poll: Poll) -> None:
        self.polls.append(poll)
        self.weights.append(1 / len(self.polls))

    def pick(self, exclude: set[str] = frozenset()) -> Poll | None:
        open_to = [(p, w) for p, w in zip(self.polls, self.weights, strict=True) if p.slug not in exclude]
        if not open_to:
            return None
        polls, weights = zip(*open_to, strict=True)
        return random.choices(polls, weights)[0]


POLLS = PollBook()
if (OUT / "polls.json").exists():
    POLLS.load(OUT / "polls.json")


class AckLog:
    """Every vote the site acknowledged (2xx), for the integrity check after the run."""

    def __init__(self) -> None:
        self._file = None

    def write(self, slug: str, voter_key: str, via: str) -> None:
        if self._file is None:
            # Per process: Locust forks its workers after importing this file.
            self._file = open(OUT / f"acks-{os.getpid()}.tsv", "a", buffering=1)  # noqa: SIM115
        self._file.write(f"{slug}\t{voter_key}\t{via}\n")


ACKS = AckLog()


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


class Voter(FastHttpUser):
    """A phone in the hall: at each new question opens a poll, votes through the form as htmx does,
    sometimes taps again.

    The phone keeps its cookies (CSRF and the signed voter cookie) and answers each poll once;
    when it has answered them all, someone new picks it up (a fresh cookie jar).
    """

    weight = MIX.get("voter", 0)
    wait_time = until_the_next_question
    network_timeout = 20.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        self.answered: set[str] = set()
        time.sleep(until_the_next_question())

    @task
    def answer_a_poll(self) -> None:
        poll = POLLS.pick(exclude=self.answered)
        if poll is None:
            self.client.cookiejar.clear()
            self.answered.clear()
            poll = POLLS.pick()
        page_url = f"{self.host}/p/{poll.slug}/"
        with self.client.get(f"/p/{poll.slug}/", name="/p/[slug]/", catch_response=True) as page:
            token = CSRF_FIELD.search(page.text or "")
            if page.status_code == 200 and not token:
                page.failure("the poll page has no vote form")
        if not token:
            return
        pause(1, 5)  # reads the question, picks an answer
        body = urlencode([("csrfmiddlewaretoken", token.group(1))] + [("choice", c) for c in poll.pick_choices()])
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": self.host,
            "Referer": page_url,
            "HX-Request": "true",
            "HX-Current-URL": page_url,
            "HX-Target": "poll-body",
        }
        vote_path = f"/p/{poll.slug}/vote/"
        with self.client.post(
            vote_path, data=body, headers=headers, name="/p/[slug]/vote/", catch_response=True
        ) as vote:
            version = VERSION.search(vote.text or "") if vote.status_code == 200 else None
            if vote.status_code == 200 and not version:
                vote.failure("the vote's answer shows no results")
        if not version:
            return
        self.answered.add(poll.slug)
        ACKS.write(poll.slug, self.voter_key(), "form")
        SCREENS.vote_acknowledged(poll.slug, int(version.group(1)), time.monotonic())

        if random.random() < AGAIN_SHARE:
            pause(1, 3)
            name = "/p/[slug]/vote/ (again: 409 expected)"
            with self.client.post(vote_path, data=body, headers=headers, name=name, catch_response=True) as again:
                if again.status_code == 409:
                    again.success()
                else:
                    again.failure(f"a repeated vote answered {again.status_code}, not 409")
        if random.random() < RESULTS_SHARE:
            pause(1, 3)
            self.client.get(f"/p/{poll.slug}/results/", name="/p/[slug]/results/")

    def voter_key(self) -> str:
        """The key inside the signed voter cookie ("key:timestamp:signature")."""
        for cookie in self.client.cookiejar:
            if cookie.name == VOTER_COOKIE:
                return cookie.value.strip('"').split(":")[0]
        return ""


class ApiVoter(FastHttpUser):
    """A program voting for one of its users through the JSON API, each vote with its own `voter` key."""

    weight = MIX.get("api", 0)
    wait_time = think(30, 60)
    network_timeout = 20.0
    connection_timeout = 10.0

    @task
    def vote(self) -> None:
        poll = POLLS.pick()
        body = {"poll": poll.slug, "choices": poll.pick_choices(), "voter": f"lt-{RUN_ID}-{uuid.uuid4().hex[:20]}"}
        with self.client.post("/api/votes/", json=body, name="/api/votes/", catch_response=True) as vote:
            if vote.status_code != 201:
                vote.failure(f"the vote answered {vote.status_code}: {(vote.text or '')[:120]}")
                return
        ACKS.write(poll.slug, body["voter"], "api")
        if random.random() < AGAIN_SHARE:
            name = "/api/votes/ (again: 409 expected)"
            with self.client.post("/api/votes/", json=body, name=name, catch_response=True) as again:
                if again.status_code == 409:
                    again.success()
                else:
                    again.failure(f"a repeated vote answered {again.status_code}, not 409")
        if random.random() < RESULTS_SHARE:
            self.client.get(f"/api/polls/{poll.slug}/results/", name="/api/polls/[id]/results/")


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


class Creator(FastHttpUser):
    """Now and then someone creates a poll: a person on the landing page, or a program on the API."""

    weight = MIX.get("creator", 0)
    wait_time = think(30, 90)
    network_timeout = 20.0
    connection_timeout = 10.0

    @task
    def create_a_poll(self) -> None:
        question = f"Load test {RUN_ID}: which talk next?"
        choices = ["Databases", "WebSockets", "Accessibility", "Caching"]
        poll = (
            self.create_on_the_api(question, choices)
            if random.random() < 0.5
            else self.create_on_the_page(question, choices)
        )
        if poll:
            POLLS.add(poll)

    def create_on_the_page(self, question: str, choices: list[str]) -> Poll | None:
        with self.client.get("/", name="/", catch_response=True) as landing:
            token = CSRF_FIELD.search(landing.text or "")
            if landing.status_code == 200 and not token:
                landing.failure("the landing page has no create form")
        if not token:
            return None
        pause(5, 15)  # types the question and the choices
        body = urlencode(
            [("csrfmiddlewaretoken", token.group(1)), ("question", question)]
            + [("choices", text) for text in choices]
            + [("results_visibility", "always"), ("dedupe", "browser")]
        )
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": self.host,
            "Referer": f"{self.host}/",
        }
        with self.client.post(
            "/polls/new/", data=body, headers=headers, name="/polls/new/", allow_redirects=False, catch_response=True
        ) as created:
            location = created.headers.get("Location", "") if created.status_code == 302 else ""
            slug = MANAGE_LOCATION.search(location)
            if not slug:
                created.failure(f"creating a poll answered {created.status_code}, not a redirect to its owner page")
                return None
            created.success()
        self.client.get(location, name="/p/[slug]/manage/[token]/")
        page = self.client.get(f"/p/{slug.group(1)}/", name="/p/[slug]/")
        choice_ids = [int(value) for value in CHOICE_INPUT.findall(page.text or "")]
        return Poll(slug=slug.group(1), choice_ids=choice_ids) if choice_ids else None

    def create_on_the_api(self, question: str, choices: list[str]) -> Poll | None:
        with self.client.post(
            "/api/polls/", json={"question": question, "choices": choices}, name="/api/polls/", catch_response=True
        ) as created:
            if created.status_code != 201:
                created.failure(f"creating a poll answered {created.status_code}: {(created.text or '')[:120]}")
                return None
            data = created.json()
        return Poll(slug=data["id"], choice_ids=[choice["id"] for choice in data["choices"]])


# A kind weighted 0 in LOADTEST_MIX is left out of the run entirely.
Voter.abstract = MIX.get("voter", 0) <= 0
ApiVoter.abstract = MIX.get("api", 0) <= 0
Viewer.abstract = MIX.get("viewer", 0) <= 0
Creator.abstract = MIX.get("creator", 0) <= 0


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
        append_record(OUT / "steps.jsonl", record)
        http = summary["http"]
        print(
            f"loadtest: step {record['step']} at {users} users: {http['rps']:.0f} req/s, "
            f"p50 {http['p50']} ms, p95 {http['p95']} ms, p99 {http['p99']} ms, "
            f"errors {summary['all']['error_pct']:.2f}%",
            flush=True,
        )
