#!/usr/bin/env python3
"""`make bench-live`: WebSocket viewers on one poll while votes arrive at 200/s; an event's phones as its
presenter moves to the next question.

For each viewer count (default 100, 1,000, 5,000) it creates a fresh poll, connects the viewers
(bench/live/viewers.py, separate processes, ~1,250 sockets each), then votes at the given rate
for the given time through the HTTP server, and measures:

- vote-to-screen latency: the k-th acknowledged vote (a 302 after commit) is on a viewer's
  screen once that viewer received a push with version >= base + k; p50/p95/max over every
  (vote, traced viewer) pair, and p95 over the first and the last 10 s of the run;
- pushes per viewer per second, and whether any viewer ever received a version lower than one
  it already had;
- CPU and peak memory of every server process, and ASGI memory per connected viewer.

"Next question" (`--phones`, default 1,000 and 5,000): for each phone count it creates an event
of 12 questions through the API, connects the phones to `/ws/events/<code>/` (every socket
traced), then the presenter POSTs `{"action": "next"}` to `/api/events/<id>/control/` `--rounds`
times. A phone has the new question once it received a push whose root's version is at least the
state's `version << 32` (polls.events.EventDisplay.version); latency runs from sending the POST.
Each round waits until every phone has the question (at most `--round-wait` seconds after the POST),
then `--round-pause` seconds and a random half second more, a presenter's pace.
`--only vote-to-screen|next-question` runs one of the two measurements.

Targets (`--target`):
- `stack` (default): starts `scripts/stack` (nginx, 2 gunicorn, 2 uvicorn, Celery, the
  broadcaster) on the CT_* ports; viewers and votes go through nginx.
- `own`: starts 1 gunicorn, 2 ASGI servers (`--asgi uvicorn|daphne`) and the broadcaster
  without nginx; viewers connect to the ASGI ports, votes go to gunicorn. Used to choose the
  ASGI server by measurement.

Results are kept in bench/live/results.json (one entry per measurement, target/server and
viewer or phone count; the latest run wins) and rendered into the "## Live results (make bench-live)" section of
docs/benchmarks.md, between its bench-live markers.
"""

import argparse
import json
import os
import random
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from bisect import bisect_left
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from loadtest.programs import programs_require  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## Live results (make bench-live)"
BEGIN, END = "<!-- bench-live:begin -->", "<!-- bench-live:end -->"
VIEWERS_PER_PROCESS = 1250
VOTE_TO_SCREEN, NEXT_QUESTION = "vote-to-screen", "next-question"
# Issue 17: p95 from the presenter's POST to the new question on the phones, by phone count.
NEXT_QUESTION_TARGETS_MS = {1000: 500, 5000: 1500}
EVENT_QUESTIONS = 12
VENV_BIN = Path(sys.executable).parent
# Viewer processes still running, so a failed run does not leave them behind.
LIVE_VIEWERS: list[subprocess.Popen] = []


def env_for_servers(args) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/crowdtick")
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    env.setdefault("SECRET_KEY", "bench-live-only")
    env |= {"RATELIMIT_ENABLE": "0", "DEBUG": "0", "PATH": f"{VENV_BIN}:{env['PATH']}", "PYTHONUNBUFFERED": "1"}
    return env


class Processes:
    """The servers under test, started here and stopped by PID."""

    def __init__(self, args) -> None:
        self.args = args
        self.env = env_for_servers(args)
        self.started: list[subprocess.Popen] = []
        self.log_dir = Path(tempfile.mkdtemp(prefix="bench-live-"))

    def spawn(self, name: str, command: list[str], extra_env: dict | None = None) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env | (extra_env or {}),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started.append(process)
        return process

    def start(self) -> tuple[str, list[str]]:
        """Starts the target; returns the HTTP base URL for votes and the WebSocket base URLs for viewers."""
        a = self.args
        if a.target == "stack":
            programs_require("nginx")
            web1, web2, ws1, ws2 = server_ports(a)
            ports = {
                "CT_HTTP_PORT": a.http_port,
                "CT_WEB1_PORT": web1,
                "CT_WEB2_PORT": web2,
                "CT_WS1_PORT": ws1,
                "CT_WS2_PORT": ws2,
            }
            extra = {k: str(v) for k, v in ports.items()} | {"CT_RUN_DIR": str(self.log_dir / "run")}
            self.spawn("stack", ["scripts/stack"], extra)
            base = f"http://127.0.0.1:{a.http_port}"
            ws = [f"ws://127.0.0.1:{a.http_port}"]
        else:
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=self.env, check=True
            )
            web, _, ws1, ws2 = server_ports(a)
            self.spawn(
                "web",
                [
                    str(VENV_BIN / "gunicorn"),
                    "crowdtick.wsgi:application",
                    "--config",
                    "deploy/gunicorn.conf.py",
                    "--bind",
                    f"127.0.0.1:{web}",
                ],
            )
            for name, port in (("ws1", ws1), ("ws2", ws2)):
                if a.asgi == "daphne":
                    command = [
                        str(VENV_BIN / "daphne"),
                        "-b",
                        "127.0.0.1",
                        "-p",
                        str(port),
                        "--access-log",
                        os.devnull,
                        "crowdtick.asgi:application",
                    ]
                else:
                    command = [
                        str(VENV_BIN / "uvicorn"),
                        "crowdtick.asgi:application",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--ws",
                        "websockets",
                        "--no-access-log",
                        "--lifespan",
                        "off",
                        "--ws-max-size",
                        "4096",
                    ]
                # Viewers connect to these ports directly, from pages of the web port's origin.
                self.spawn(name, command, {"CSRF_TRUSTED_ORIGINS": f"http://127.0.0.1:{web}"})
            self.spawn("broadcaster", [sys.executable, "manage.py", "broadcast"])
            base = f"http://127.0.0.1:{web}"
            ws = [f"ws://127.0.0.1:{ws1}", f"ws://127.0.0.1:{ws2}"]
        _wait_for(f"{base}/healthz")
        for url in ws:
            _wait_for(url.replace("ws://", "http://") + "/healthz")
        time.sleep(3)  # the broadcaster and workers finish starting
        return base, ws

    def servers(self) -> dict[str, list[psutil.Process]]:
        """Server processes by role, e.g. {"ws :8111 (uvicorn)": [...], "web :8101 (gunicorn)": [master, workers]}."""
        roles: dict[str, list[psutil.Process]] = {}
        for root in self.started:
            try:
                family = [psutil.Process(root.pid)] + psutil.Process(root.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                continue
            for process in family:
                try:
                    if process.name() in ("sh", "bash", "honcho"):
                        continue  # the wrappers honcho starts, not servers
                    role = _role(process.cmdline())
                except psutil.Error:
                    continue
                if role:
                    roles.setdefault(role, []).append(process)
        return roles

    def stop(self) -> None:
        for process in reversed(self.started):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def server_ports(args) -> tuple[int, int, int, int]:
    """The two HTTP and the two ASGI servers' ports: CT_WEB1_PORT, CT_WEB2_PORT, CT_WS1_PORT and CT_WS2_PORT
    as `scripts/stack` reads them, else --port-base + 1, + 2, + 11 and + 12."""
    offsets = {"CT_WEB1_PORT": 1, "CT_WEB2_PORT": 2, "CT_WS1_PORT": 11, "CT_WS2_PORT": 12}
    web1, web2, ws1, ws2 = (int(os.environ.get(name, args.port_base + offset)) for name, offset in offsets.items())
    return web1, web2, ws1, ws2


def _role(cmdline: list[str]) -> str | None:
    line = " ".join(cmdline)
    port = re.search(r"(?:--port|-p|--bind 127\.0\.0\.1:|-b 127\.0\.0\.1 -p) ?(\d+)", line)
    port = f" :{port.group(1)}" if port else ""
    if "uvicorn" in line and "crowdtick.asgi" in line:
        return f"ws{port} (uvicorn)"
    if "daphne" in line:
        return f"ws{port} (daphne)"
    if "gunicorn" in line:
        bind = re.search(r"127\.0\.0\.1:(\d+)", line)
        return f"web :{bind.group(1)} (gunicorn)" if bind else "web (gunicorn)"
    if "manage.py broadcast" in line:
        return "broadcaster"
    if line.startswith("nginx"):
        return "nginx"
    if "celery" in line:
        return "celery beat" if " beat" in line else "celery worker"
    return None


def _wait_for(url: str, timeout: float = 400) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not answer within {timeout}s")


def _csrf(session: requests.Session, url: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', session.get(url, timeout=10).text).group(1)


def create_poll(base: str) -> tuple[str, list[str]]:
    session = requests.Session()
    data = {
        "question": "Which track should open tomorrow?",
        "choices": ["Databases", "Browsers", "Networks", "Tools"],
        "max_choices": 1,
        "results_visibility": "always",
        "dedupe": "none",
        "csrfmiddlewaretoken": _csrf(session, f"{base}/"),
    }
    response = session.post(f"{base}/polls/new/", data=data, allow_redirects=False, timeout=10)
    response.raise_for_status()
    slug = response.headers["Location"].split("/")[2]
    choice_ids = re.findall(r'name="choice" value="(\d+)"', session.get(f"{base}/p/{slug}/", timeout=10).text)
    return slug, choice_ids


def shown_version(base: str, slug: str) -> int:
    return int(re.search(r'data-version="(\d+)"', requests.get(f"{base}/p/{slug}/results/", timeout=10).text).group(1))


class Voter:
    """Votes at a steady rate from a thread pool; records when each vote was acknowledged."""

    def __init__(self, base: str, slug: str, choice_ids: list[str]) -> None:
        self.base, self.slug, self.choice_ids = base, slug, choice_ids
        self.acks: list[float] = []
        self.errors: dict[str, int] = {}
        self._local = threading.local()
        self._lock = threading.Lock()

    def _session(self) -> tuple[requests.Session, str]:
        if not hasattr(self._local, "session"):
            session = requests.Session()
            self._local.session = session
            self._local.token = _csrf(session, f"{self.base}/p/{self.slug}/")
        return self._local.session, self._local.token

    def _vote(self, k: int) -> None:
        try:
            session, token = self._session()
            data = {"csrfmiddlewaretoken": token, "choice": self.choice_ids[k % len(self.choice_ids)]}
            response = session.post(f"{self.base}/p/{self.slug}/vote/", data=data, allow_redirects=False, timeout=10)
            outcome = "ok" if response.status_code == 302 else str(response.status_code)
        except requests.RequestException as error:
            outcome = type(error).__name__
        with self._lock:
            if outcome == "ok":
                self.acks.append(time.time())
            else:
                self.errors[outcome] = self.errors.get(outcome, 0) + 1

    def run(self, rate: float, duration: float) -> float:
        started = time.time()
        with ThreadPoolExecutor(max_workers=48) as pool:
            for k in range(int(rate * duration)):
                delay = started + k / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(self._vote, k)
        self.finished = time.time()
        return started


class Sampler(threading.Thread):
    """CPU (percent of one core) and memory of every server process, once a second."""

    def __init__(self, roles: dict[str, list[psutil.Process]]) -> None:
        super().__init__(daemon=True)
        self.roles = roles
        self.cpu: dict[str, list[float]] = {role: [] for role in roles}
        self.rss: dict[str, float] = {role: 0.0 for role in roles}
        self.stopped = threading.Event()
        for processes in roles.values():
            for process in processes:
                _quietly(process.cpu_percent)

    def run(self) -> None:
        psutil.cpu_percent()
        self.machine: list[float] = []
        while not self.stopped.wait(1.0):
            self.machine.append(psutil.cpu_percent() * psutil.cpu_count())
            for role, processes in self.roles.items():
                self.cpu[role].append(sum(_quietly(p.cpu_percent) or 0.0 for p in processes))
                rss = sum((_quietly(p.memory_info) or _NoMemory).rss for p in processes) / 2**20
                self.rss[role] = max(self.rss[role], rss)


class _NoMemory:
    rss = 0


def _quietly(method):
    try:
        return method()
    except psutil.Error:
        return None


def asgi_rss(roles: dict[str, list[psutil.Process]]) -> float:
    return (
        sum(
            (_quietly(p.memory_info) or _NoMemory).rss
            for role, ps in roles.items()
            if role.startswith("ws")
            for p in ps
        )
        / 2**20
    )


def start_viewers(
    count: int, ws_bases: list[str], path: str, origin: str, out_dir: Path, *, trace_all: bool = False
) -> list:
    """Viewers of `path` (e.g. /ws/polls/<slug>/) in processes of at most VIEWERS_PER_PROCESS sockets; 200 of them
    traced, or every one with `trace_all`, whose processes then also answer `wait_for_version`."""
    viewers = []
    processes_needed = max(1, -(-count // VIEWERS_PER_PROCESS))
    label = "phones" if trace_all else "viewers"
    for i in range(processes_needed):
        share = count // processes_needed + (1 if i < count % processes_needed else 0)
        output = out_dir / f"{label}-{count}-{i}.json"
        command = [
            sys.executable,
            str(HERE / "viewers.py"),
            "--origin",
            origin,
            "--count",
            str(share),
            "--traced",
            str(share if trace_all else max(1, 200 // processes_needed)),
            "--output",
            str(output),
        ]
        if trace_all:
            command.append("--commands")
        for base in ws_bases:
            command += ["--url", f"{base}{path}"]
        stdin = subprocess.PIPE if trace_all else None
        process = subprocess.Popen(command, stdin=stdin, stdout=subprocess.PIPE, text=True)
        LIVE_VIEWERS.append(process)
        viewers.append((process, output))
    connected = failed = 0
    for process, _ in viewers:
        line = process.stdout.readline().split()
        if not line or line[0] != "READY":
            raise SystemExit("a viewer process died before its sockets were open")
        connected, failed = connected + int(line[1]), failed + int(line[2])
    return viewers, connected, failed


def wait_for_version(viewers, version: int, seconds: float) -> tuple[int, int]:
    """Waits until every opened socket has `version` or a later one, or `seconds` pass; (sockets with it, of)."""
    for process, _ in viewers:
        process.stdin.write(f"WAIT {version} {max(0.0, seconds)}\n")
        process.stdin.flush()
    have = of = 0
    for process, _ in viewers:
        words = process.stdout.readline().split()
        if not words or words[0] != "HAVE":
            raise SystemExit(f"a phone process answered {words!r} to WAIT")
        have, of = have + int(words[1]), of + int(words[2])
    return have, of


def stop_viewers(viewers) -> dict:
    for process, _ in viewers:
        process.send_signal(signal.SIGTERM)
        if process.stdin:
            process.stdin.close()
    merged = {"messages": [], "went_back": 0, "closed_early": 0, "close_codes": set(), "traces": [], "failures": []}
    for process, output in viewers:
        process.wait(timeout=120)
        part = json.loads(output.read_text())
        merged["messages"] += part["messages"]
        merged["went_back"] += part["went_back"]
        merged["closed_early"] += part["closed_early"]
        merged["close_codes"] |= set(part["close_codes"])
        merged["traces"] += part["traces"]
        merged["failures"] += part["failures"]
    merged["close_codes"] = sorted(merged["close_codes"])
    return merged


def latencies(acks: list[float], base_version: int, traces: list[list]) -> list[tuple[float, float]]:
    """(ack time, seconds until on screen) for every acknowledged vote and traced viewer."""
    acks = sorted(acks)
    pairs = []
    for trace in traces:
        if not trace:
            continue
        times, running = _timeline(trace)
        for k, acked in enumerate(acks, start=1):
            i = bisect_left(running, base_version + k)
            if i < len(running):
                pairs.append((acked, max(0.0, times[i] - acked)))
            else:
                pairs.append((acked, float("inf")))  # never reached this viewer's screen
    return pairs


def _timeline(trace: list) -> tuple[list[float], list[int]]:
    """A viewer's receive times, and the highest version it had seen by each: "the first receive with
    version >= v" is then a bisect."""
    times, running, best = [], [], -1
    for at, version in trace:
        best = max(best, version)
        times.append(at)
        running.append(best)
    return times, running


def next_question_latencies(rounds: list[tuple[float, int]], traces: list[list]) -> list[list[float]]:
    """For each round (POST sent at, version of the new state), the seconds until each phone with a
    trace received that version or a later one; inf for a phone that never did."""
    per_round: list[list[float]] = [[] for _ in rounds]
    for trace in traces:
        if not trace:
            continue  # the socket never opened: counted among the connect failures
        times, running = _timeline(trace)
        for delays, (sent, version) in zip(per_round, rounds, strict=True):
            i = bisect_left(running, version)
            delays.append(max(0.0, times[i] - sent) if i < len(running) else float("inf"))
    return per_round


def _ms(seconds: float) -> int | None:
    """Milliseconds, or None for "never reached the screen" (or nothing measured)."""
    return round(1000 * seconds) if seconds == seconds and seconds != float("inf") else None


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def measure(args, count: int, base: str, ws_bases: list[str], processes: Processes, out_dir: Path) -> dict:
    slug, choice_ids = create_poll(base)
    roles = processes.servers()
    rss_before = asgi_rss(roles)
    origin = base
    viewers, connected, failed = start_viewers(count, ws_bases, f"/ws/polls/{slug}/", origin, out_dir)
    time.sleep(2)
    rss_connected = asgi_rss(roles)
    base_version = shown_version(base, slug)
    # The viewers' own processes too: when they saturate, latency is the client's, not the site's.
    client_roles = roles | {"viewers (bench client)": [psutil.Process(p.pid) for p, _ in viewers]}
    sampler = Sampler(client_roles)
    sampler.start()
    voter = Voter(base, slug, choice_ids)
    started = voter.run(args.rate, args.duration)
    time.sleep(3)  # the last votes reach the screens
    sampler.stopped.set()
    received = stop_viewers(viewers)
    pairs = latencies(voter.acks, base_version, received["traces"])
    delays = [d for _, d in pairs]
    never = sum(1 for d in delays if d == float("inf"))
    first = [d for t, d in pairs if t - started < 10]
    last = [d for t, d in pairs if t - started >= args.duration - 10]
    # Pushes per viewer per second while votes arrive, from the traced viewers' receive times.
    window = [sum(1 for t, _ in trace if started <= t < started + args.duration) for trace in received["traces"]]
    cpu = {role: round(statistics.mean(samples), 1) for role, samples in sampler.cpu.items() if samples}
    return {
        "target": target_name(args),
        "viewers": count,
        "connected": connected,
        "connect_failures": failed,
        "closed_early": received["closed_early"],
        "votes_acked": len(voter.acks),
        "vote_errors": voter.errors,
        "vote_rate": round(len(voter.acks) / (voter.finished - started), 1),
        "duration": args.duration,
        "latency_ms": {
            "p50": _ms(percentile(delays, 50)),
            "p95": _ms(percentile(delays, 95)),
            "max": _ms(max(delays)) if delays else None,
            "first10_p95": _ms(percentile(first, 95)),
            "last10_p95": _ms(percentile(last, 95)),
        },
        "final_version": shown_version(base, slug),
        # The machine is shared: the 1-minute load average at the end says how much else was running.
        "load_average_1m": round(os.getloadavg()[0], 1),
        "machine_cpu_percent": round(statistics.mean(sampler.machine), 1) if sampler.machine else None,
        "vote_phase_seconds": round(voter.finished - started, 1),
        "never_on_screen": never,
        "pairs": len(pairs),
        "pushes_per_viewer_per_s": round(statistics.mean(window) / args.duration, 2) if window else 0,
        "went_back": received["went_back"],
        "cpu_percent": cpu,
        "peak_rss_mb": {role: round(rss, 1) for role, rss in sampler.rss.items()},
        "asgi_rss_mb_before": round(rss_before, 1),
        "asgi_rss_mb_connected": round(rss_connected, 1),
        "failures_sample": received["failures"][:3],
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


@dataclass(frozen=True)
class BenchEvent:
    id: str
    code: str
    token: str  # the presenter's owner token, the last part of manage_url
    version: int  # its state's version when created


def create_event(base: str) -> BenchEvent:
    """An event of EVENT_QUESTIONS questions of 4 choices, created as a program would (no Origin header)."""
    questions = [
        {
            "question": f"Question {n}: which track should open tomorrow?",
            "choices": ["Databases", "Browsers", "Networks", "Tools"],
        }
        for n in range(1, EVENT_QUESTIONS + 1)
    ]
    response = requests.post(
        f"{base}/api/events/", json={"title": "bench-live: next question", "questions": questions}, timeout=30
    )
    response.raise_for_status()
    body = response.json()
    token = body["manage_url"].rstrip("/").rsplit("/", 1)[1]
    return BenchEvent(body["id"], body["code"], token, body["state"]["version"])


def measure_next_question(
    args, count: int, base: str, ws_bases: list[str], processes: Processes, out_dir: Path
) -> dict:
    began = time.monotonic()
    event = create_event(base)
    roles = processes.servers()
    viewers, connected, failed = start_viewers(
        count, ws_bases, f"/ws/events/{event.code}/", base, out_dir, trace_all=True
    )
    # Every phone holds the waiting screen before the first round (each got it as its snapshot).
    ready, _ = wait_for_version(viewers, event.version << 32, args.round_wait)
    sampler = Sampler(roles | {"phones (bench client)": [psutil.Process(p.pid) for p, _ in viewers]})
    sampler.start()
    presenter = requests.Session()
    presenter.headers["Authorization"] = f"Bearer {event.token}"
    rounds, answers, waits = [], [], []
    for _ in range(args.rounds):
        # A random pause, so the POST falls anywhere in the broadcaster's 250 ms tick: paced by what the phones
        # show, a fixed one would keep every round at the same point of the tick.
        time.sleep(args.round_pause + random.uniform(0, 0.5))
        sent = time.time()
        response = presenter.post(f"{base}/api/events/{event.id}/control/", json={"action": "next"}, timeout=30)
        answers.append(time.time() - sent)
        response.raise_for_status()
        version = response.json()["state"]["version"] << 32
        rounds.append((sent, version))
        waits.append(wait_for_version(viewers, version, sent + args.round_wait - time.time()))
    sampler.stopped.set()
    received = stop_viewers(viewers)
    per_round = next_question_latencies(rounds, received["traces"])
    return {
        "measure": NEXT_QUESTION,
        "target": target_name(args),
        "phones": count,
        "connected": connected,
        "connect_failures": failed,
        "ready_before_first_round": ready,
        "closed_early": received["closed_early"],
        "rounds": args.rounds,
        "round_pause_s": args.round_pause,
        **next_question_summary(per_round, count),
        "post_answered_ms_p50": _ms(statistics.median(answers)),
        "phones_with_it_when_waiting_ended": [have for have, _ in waits],
        "went_back": received["went_back"],
        "cpu_percent": {role: round(statistics.mean(c), 1) for role, c in sampler.cpu.items() if c},
        "cpu_percent_peak": {role: round(max(c), 1) for role, c in sampler.cpu.items() if c},
        "peak_rss_mb": {role: round(rss, 1) for role, rss in sampler.rss.items()},
        "load_average_1m": round(os.getloadavg()[0], 1),
        "machine_cpu_percent": round(statistics.mean(sampler.machine), 1) if sampler.machine else None,
        "failures_sample": received["failures"][:3],
        "step_seconds": round(time.monotonic() - began),  # connecting the phones included
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def next_question_summary(per_round: list[list[float]], phones: int) -> dict:
    """Latency over every (round, phone) pair, against the target for this phone count; per round, the first
    and the last phone (their gap is the fan-out), in ms."""
    delays = [d for delays in per_round for d in delays]
    received = [d for d in delays if d != float("inf")]
    p95 = _ms(percentile(delays, 95))
    target = NEXT_QUESTION_TARGETS_MS.get(phones)
    missing = sum(1 for pairs in zip(*per_round, strict=True) if float("inf") in pairs)  # phones that missed any round
    return {
        "latency_ms": {
            "p50": _ms(percentile(delays, 50)),
            "p95": p95,
            "max": _ms(max(delays)) if delays else None,
        },
        "target_p95_ms": target,
        "met": None if target is None else p95 is not None and p95 < target,
        "pairs": len(delays),
        "never": len(delays) - len(received),
        "phones_missing_a_round": missing,
        "per_round_ms": [
            {
                "first": _ms(min(delays)) if delays else None,
                "p50": _ms(percentile(delays, 50)),
                "p95": _ms(percentile(delays, 95)),
                "last": _ms(max(delays)) if delays else None,
            }
            for delays in per_round
        ],
    }


def idle_check(args, base: str, ws_bases: list[str], out_dir: Path) -> dict:
    """Viewers that only listen, with no vote, for longer than the proxies' and Redis' idle timeouts."""
    slug, _ = create_poll(base)
    viewers, connected, failed = start_viewers(args.idle_viewers, ws_bases, f"/ws/polls/{slug}/", base, out_dir)
    time.sleep(args.idle)
    received = stop_viewers(viewers)
    return {
        "viewers": args.idle_viewers,
        "seconds": args.idle,
        "connected": connected,
        "connect_failures": failed,
        "closed_early": received["closed_early"],
        "close_codes": received["close_codes"],
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def target_name(args) -> str:
    """The target as the tables name it: the stack (with its Redis shards when more than one), or own servers."""
    if args.target != "stack":
        return f"own ({args.asgi})"
    shards = int(os.environ.get("CT_REDIS_SHARDS", "1") or 1)
    return "stack" if shards <= 1 else f"stack, {shards} Redis shards"


def _cell(ms: int | None) -> str:
    return "never" if ms is None else f"{ms:,}"


def measure_of(result: dict) -> str:
    return result.get("measure", VOTE_TO_SCREEN)  # results of earlier runs name no measure: all were votes


def result_key(result: dict) -> tuple:
    """What a later run replaces a result by, and the order of the tables' rows."""
    count = result["phones"] if measure_of(result) == NEXT_QUESTION else result["viewers"]
    return (measure_of(result) != VOTE_TO_SCREEN, not result["target"].startswith("stack"), result["target"], count)


def render(results: list[dict]) -> str:
    votes = [r for r in results if measure_of(r) == VOTE_TO_SCREEN]
    nexts = [r for r in results if measure_of(r) == NEXT_QUESTION]
    return "\n\n".join(part for part in (render_votes(votes), render_next_question(nexts)) if part)


def render_votes(results: list[dict]) -> str:
    if not results:
        return ""
    lines = [
        "| target | viewers | connected | votes/s acked | p50 ms | p95 ms | max ms | p95 first 10 s | p95 last 10 s "
        "| on screen by the end | pushes/viewer/s | version went back | ASGI RSS MiB (all viewers connected) "
        "| ASGI KiB/viewer |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    smallest = {}
    for r in results:
        if r["target"] not in smallest or r["viewers"] < smallest[r["target"]]["viewers"]:
            smallest[r["target"]] = r
    for r in results:
        # Marginal memory: against the same target's smallest run, so start-up and warm-up cancel out.
        low = smallest[r["target"]]
        added_mb = r["asgi_rss_mb_connected"] - low["asgi_rss_mb_connected"]
        added_viewers = r["connected"] - low["connected"]
        per_viewer = f"{1024 * added_mb / added_viewers:.0f}" if added_viewers > 0 else "(baseline)"
        lat = r["latency_ms"]
        lines.append(
            f"| {r['target']} | {r['viewers']:,} | {r['connected']:,} | {r['vote_rate']} | {_cell(lat['p50'])} "
            f"| {_cell(lat['p95'])} | {_cell(lat['max'])} | {_cell(lat['first10_p95'])} | {_cell(lat['last10_p95'])} "
            f"| {100 * (1 - r['never_on_screen'] / max(1, r['pairs'])):.0f}% "
            f"| {r['pushes_per_viewer_per_s']} | {r['went_back']} "
            f"| {r['asgi_rss_mb_connected']} | {per_viewer} |"
        )
    lines += ["", "CPU (mean % of one core) and peak memory (MiB) per process during the vote phase:", ""]
    lines += ["| target | viewers | process | CPU % | peak RSS MiB |", "| --- | ---: | --- | ---: | ---: |"]
    for r in results:
        for role in sorted(r["cpu_percent"]):
            lines.append(
                f"| {r['target']} | {r['viewers']:,} | {role} | {r['cpu_percent'][role]} "
                f"| {r['peak_rss_mb'].get(role, '')} |"
            )
    notes = [r for r in results if r["connect_failures"] or r["closed_early"] or r["vote_errors"]]
    if notes:
        lines += ["", "Failures seen:", ""]
        for r in notes:
            lines.append(
                f"- {r['target']}, {r['viewers']:,} viewers: {r['connect_failures']} sockets failed to open, "
                f"{r['closed_early']} closed early, vote errors {r['vote_errors'] or 'none'} "
                f"{'; e.g. ' + '; '.join(r['failures_sample']) if r['failures_sample'] else ''}"
            )
    loads = "; ".join(
        f"{r['target']} {r['viewers']:,}: load {r.get('load_average_1m', '?')}, all processes "
        f"{r.get('machine_cpu_percent', '?')}% of one core"
        for r in results
    )
    lines += ["", f"Whole machine during each run (2 cores = 200%; other helpers' work shared it): {loads}."]
    stamp = sorted({r["measured_at"] for r in results})
    lines += ["", f"Measured {stamp[0]} to {stamp[-1]} on this machine (2 shared cores; see the notes above)."]
    return "\n".join(lines)


def render_next_question(results: list[dict]) -> str:
    if not results:
        return ""
    lines = [
        "**Next question**: from sending the presenter's POST (`next`) to the new question on each phone, over "
        "every (round, phone) pair; first and last phone: the median over the rounds of the first and the last "
        "phone to show it.",
        "",
        "| target | phones | connected | rounds | p50 ms | p95 ms | max ms | p95 target | met? | never on a phone "
        "| first phone ms | last phone ms | POST answered ms | version went back | peak CPU % per ASGI process "
        "| peak CPU % bench client |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: |",
    ]
    for r in results:
        lat, rounds = r["latency_ms"], r["per_round_ms"]
        target = f"< {r['target_p95_ms']:,}" if r["target_p95_ms"] else "none"
        mark = {True: "**met**", False: "**missed**", None: ""}[r["met"]]
        asgi = " / ".join(f"{cpu:g}" for role, cpu in sorted(r["cpu_percent_peak"].items()) if role.startswith("ws"))
        client = sum(cpu for role, cpu in r["cpu_percent_peak"].items() if "bench client" in role)
        lines.append(
            f"| {r['target']} | {r['phones']:,} | {r['connected']:,} | {r['rounds']} | {_cell(lat['p50'])} "
            f"| {_cell(lat['p95'])} | {_cell(lat['max'])} | {target} | {mark} | {r['never']} of {r['pairs']:,} "
            f"| {_cell(_median_round(rounds, 'first'))} | {_cell(_median_round(rounds, 'last'))} "
            f"| {_cell(r['post_answered_ms_p50'])} | {r['went_back']} | {asgi} | {client:g} |"
        )
    notes = [r for r in results if r["connect_failures"] or r["closed_early"]]
    if notes:
        lines += ["", "Failures seen:", ""]
    for r in notes:
        sample = "; e.g. " + "; ".join(r["failures_sample"]) if r["failures_sample"] else ""
        lines.append(
            f"- {r['target']}, {r['phones']:,} phones: {r['connect_failures']} sockets failed to open, "
            f"{r['closed_early']} closed early{sample}"
        )
    loads = "; ".join(
        f"{r['target']} {r['phones']:,}: load {r['load_average_1m']}, all processes {r['machine_cpu_percent']}% "
        "of one core"
        for r in results
    )
    stamp = sorted({r["measured_at"] for r in results})
    lines += [
        "",
        f"Whole machine during the rounds (2 cores = 200%; other work shared it): {loads}. "
        f"Measured {stamp[0]} to {stamp[-1]}.",
    ]
    return "\n".join(lines)


def _median_round(rounds: list[dict], field: str) -> int | None:
    values = [r[field] for r in rounds]
    return None if not values or None in values else round(statistics.median(values))


def write_doc(results: list[dict]) -> None:
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    table = f"{BEGIN}\n{render(results)}\n{END}"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + table + text[text.index(END) + len(END) :]
    elif SECTION in text:
        at = text.index(SECTION) + len(SECTION)
        text = text[:at] + "\n\n" + table + "\n" + text[at:]
    else:
        text = text.rstrip() + f"\n\n{SECTION}\n\n{table}\n"
    DOC.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=["stack", "own"], default="stack")
    parser.add_argument("--asgi", choices=["uvicorn", "daphne"], default="uvicorn", help="for --target own")
    parser.add_argument("--viewers", default="100,1000,5000", help="viewer counts for vote-to-screen")
    parser.add_argument("--phones", default="1000,5000", help="phone counts for next-question")
    parser.add_argument("--only", choices=[VOTE_TO_SCREEN, NEXT_QUESTION], help="run one of the two measurements")
    parser.add_argument("--rounds", type=int, default=10, help=f"'next' per phone count (at most {EVENT_QUESTIONS})")
    parser.add_argument("--round-wait", type=float, default=3.0, help="most seconds a round waits for every phone")
    parser.add_argument(
        "--round-pause", type=float, default=1.0, help="seconds (+ 0-0.5 s) between rounds once phones have it"
    )
    parser.add_argument("--rate", type=float, default=200.0, help="votes per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of voting per viewer count")
    parser.add_argument("--http-port", type=int, default=int(os.environ.get("CT_HTTP_PORT", "8090")))
    parser.add_argument(
        "--port-base",
        type=int,
        default=int(os.environ.get("BENCH_LIVE_PORT_BASE", "8190")),
        help="servers listen on base+1, base+2 (HTTP) and base+11, base+12 (ASGI), unless CT_WEB1_PORT, "
        "CT_WEB2_PORT, CT_WS1_PORT and CT_WS2_PORT say otherwise",
    )
    parser.add_argument(
        "--no-doc",
        action="store_true",
        help="print the results only: write neither results.json nor the doc",
    )
    parser.add_argument("--idle", type=float, default=0, help="also hold idle viewers this many seconds (e.g. 75)")
    parser.add_argument("--idle-viewers", type=int, default=150)
    args = parser.parse_args()
    if not 1 <= args.rounds <= EVENT_QUESTIONS:
        parser.error(f"--rounds: 1 to {EVENT_QUESTIONS}, the event's questions")
    steps = []
    if args.only != NEXT_QUESTION:
        steps += [(measure, int(n)) for n in args.viewers.split(",")]
    if args.only != VOTE_TO_SCREEN:
        steps += [(measure_next_question, int(n)) for n in args.phones.split(",")]

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by servers and viewers
    processes = Processes(args)
    out_dir = processes.log_dir
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    try:
        base, ws_bases = processes.start()
        if args.idle:
            print(json.dumps({"idle": idle_check(args, base, ws_bases, out_dir)}), flush=True)
        for step, count in steps:
            result = step(args, count, base, ws_bases, processes, out_dir)
            print(json.dumps(result, indent=1), flush=True)
            results = [r for r in results if result_key(r) != result_key(result)] + [result]
            results.sort(key=result_key)
            if not args.no_doc:
                RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    finally:
        for viewer in LIVE_VIEWERS:
            if viewer.poll() is None:
                viewer.kill()
        processes.stop()
        print(f"server logs: {processes.log_dir}", flush=True)
    if not args.no_doc:
        write_doc(results)


if __name__ == "__main__":
    main()
