#!/usr/bin/env python3
"""CrowdTick's capacity model: what one unit (web pod, ws pod, PostgreSQL primary, Redis shard) carries,
taken from the figures `make bench`, `make bench-live` and `make loadtest` measured on the 2-core machine;
a check of the model against those figures; and the units bigger loads need.

    .venv/bin/python scripts/capacity_model.py      # prints the Markdown of docs/scaling.md, "Capacity model"

Standard library only, no input, no clock: the same output every run. Every measured number is a `Figure`
holding the text its source prints and the passage around it, so a test can find each one in its file.

How CPU is apportioned. The machine has 2 cores shared by every process, the load generator included, so a
figure like "766 votes/s" is not one unit's capacity. The load test's CPU tables give each role's cores per
step; a role's cost per vote, request or viewer is its cores divided by the step's rate, and a unit's
capacity is one core (a gunicorn instance is one GIL-bound process, a uvicorn process one event loop, Redis
one command thread) divided by that cost.
"""

import math
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = "docs/benchmarks.md"
REPORT = "docs/loadtest/REPORT.md"
# The commit whose benchmark figures the model is fitted on. A benchmark run rewrites its page, so each quote
# below is found in its file as of this commit (`git show`), not as it is now: rerunning `make loadtest` or
# `make bench` leaves the model's inputs where they were. To fit the model on newer figures, update the quotes
# and this commit together.
FITTED_ON = "4d1a4b1"


class Figure(float):
    """A number measured (or set) in the repository: `text` as `source` prints it, inside `quote`."""

    def __new__(cls, text: str, source: str, quote: str):
        figure = super().__new__(cls, float(text.replace(",", "")))
        figure.text, figure.source, figure.quote = text, source, quote
        return figure


def figures() -> dict[str, Figure]:
    return {name: value for name, value in globals().items() if isinstance(value, Figure)}


# --- The machine ------------------------------------------------------------------------------------------
MACHINE_CORES = Figure("2", REPORT, "AMD EPYC, 2 cores")

# --- Hall (REPORT.md: "Hall: per step", "Hall: CPU and memory per process", "Verdict") -------------------
# A phone votes once per question, 2 to 15 s after the question opens: a minute's votes land in 13 s.
VOTE_FROM_S = Figure("2", REPORT, "(2–15 s of 20)")
VOTE_TO_S = Figure("15", REPORT, "(2–15 s of 20)")
BUSIEST_S = Figure("10", REPORT, "in the step's busiest 10 s the machine was 96% busy")
_H2000_STEP = "| 2,000 | 38 | 49.0 | 207 | 309 | 0 | 0.00 | 445 | 603 | 627 | 1,980 | 2,104 | 155 | 32% | 96% |"
H2000_USERS = Figure("2,000", REPORT, _H2000_STEP)
H2000_VOTES_PER_MIN = Figure("2,104", REPORT, _H2000_STEP)
_H2000_CPU = "### 2,000 users: machine 32% busy (0.64 cores, of which other processes 0.04)"
H2000_MACHINE = Figure("0.64", REPORT, _H2000_CPU)
H2000_OTHER = Figure("0.04", REPORT, _H2000_CPU)
_H2000_BURST = (
    "1.92 of its cores: gunicorn (HTTP) 0.73, postgres (this database) 0.50, locust (load generator) 0.28, "
    "uvicorn (WebSockets) 0.25"
)
H2000_BURST_MACHINE = Figure("1.92", REPORT, _H2000_BURST)
H2000_BURST_WEB = Figure("0.73", REPORT, _H2000_BURST)
H2000_BURST_PG = Figure("0.50", REPORT, _H2000_BURST)
H2000_BURST_GEN = Figure("0.28", REPORT, _H2000_BURST)
H2000_BURST_WS = Figure("0.25", REPORT, _H2000_BURST)
H2000_WEB = Figure("0.17", REPORT, "| gunicorn (HTTP) | 0.01 (12%) | 0.03 (19%) | 0.05 (21%) | 0.09 (26%) | 0.17 (26%)")
_HALL_PG_ROW = "| postgres (this database) | 0.00 (4%) | 0.01 (8%) | 0.02 (9%) | 0.05 (13%) | 0.11 (17%) |"
H2000_PG = Figure("0.11", REPORT, _HALL_PG_ROW)
_HALL_WS_ROW = "| uvicorn (WebSockets) | 0.01 (11%) | 0.02 (11%) | 0.03 (11%) | 0.04 (12%) | 0.08 (12%) |"
H2000_WS = Figure("0.08", REPORT, _HALL_WS_ROW)
_HALL_GEN_ROW = "| locust (load generator) | 0.02 (22%) | 0.05 (28%) | 0.08 (32%) | 0.12 (32%) | 0.20 (31%) |"
H2000_GEN = Figure("0.20", REPORT, _HALL_GEN_ROW)
# The hall's Redis at 4,000 users: REPORT rounds to 0.01 core, and 0.02 is the least rounded hall figure.
_HALL_REDIS_ROW = "| redis (shared server) | 0.00 (3%) | 0.00 (2%) | 0.00 (2%) | 0.01 (2%) | 0.01 (2%) | 0.02 (2%) |"
H4000_REDIS = Figure("0.02", REPORT, _HALL_REDIS_ROW)
# Steps the model predicts (not used to build it).
_H1000_STEP = "| 1,000 | 19 | 9.9 | 25.6 | 47.1 | 0 | 0.00 | 181 | 247 | 254 | 990 | 1,060 | 24.0 | 18% | 53% |"
H1000_USERS = Figure("1,000", REPORT, _H1000_STEP)
H1000_VOTES_PER_MIN = Figure("1,060", REPORT, _H1000_STEP)
H1000_BURST_BUSY_PCT = Figure("53", REPORT, _H1000_STEP)
_H1000_CPU = "### 1,000 users: machine 18% busy (0.36 cores, of which other processes 0.03)"
H1000_MACHINE = Figure("0.36", REPORT, _H1000_CPU)
H1000_OTHER = Figure("0.03", REPORT, _H1000_CPU)
_H4000_STEP = "| 4,000 | 72 | 8,116 | 14,007 | 15,423 | 1,613 | 19.25 | 659 | 966 | 992 | 3,960 | 4,052 |"
H4000_USERS = Figure("4,000", REPORT, _H4000_STEP)
H4000_VOTES_PER_MIN = Figure("4,052", REPORT, _H4000_STEP)
_H4000_CPU = "### 4,000 users: machine 58% busy (1.15 cores, of which other processes 0.05)"
H4000_MACHINE = Figure("1.15", REPORT, _H4000_CPU)
H4000_OTHER = Figure("0.05", REPORT, _H4000_CPU)
_HALL_CEILING_ROW = "| Hall | 3,878 | 98% | 201 | 100 | 45.3 | 208 | 437 | 0 | 0.00 | 100% |"
HALL_CEILING_RPS = Figure("201", REPORT, _HALL_CEILING_ROW)
HALL_CEILING_USERS = Figure("100", REPORT, _HALL_CEILING_ROW)
H100_OTHER = Figure("0.03", REPORT, "### 100 users: machine 5% busy (0.10 cores, of which other processes 0.03)")

# --- Public site (REPORT.md: "Public site: per step", "Public site: CPU and memory per process") ----------
_P1000_STEP = "| 1,000 | 474 | 17.2 | 80.2 | 146 | 0 | 0.00 | 36.9 | 90.2 / 89.5 | 56.4 / 55.3 |"
P1000_USERS = Figure("1,000", REPORT, _P1000_STEP)
P1000_RPS = Figure("474", REPORT, _P1000_STEP)
P1000_CREATES = Figure("36.9", REPORT, _P1000_STEP)
P1000_FORM_VOTES = Figure("90.2", REPORT, _P1000_STEP)
P1000_API_VOTES = Figure("89.5", REPORT, _P1000_STEP)
_P1000_CPU = "### 1,000 users: machine 91% busy (1.79 cores, of which other processes 0.04)"
P1000_MACHINE = Figure("1.79", REPORT, _P1000_CPU)
P1000_OTHER = Figure("0.04", REPORT, _P1000_CPU)
_PUBLIC_WEB_ROW = "| gunicorn (HTTP) | 0.17 (54%) | 0.68 (66%) | 1.21 (68%) | 1.34 (68%) |"
P1000_WEB = Figure("1.21", REPORT, _PUBLIC_WEB_ROW)
P2000_WEB = Figure("1.34", REPORT, _PUBLIC_WEB_ROW)
P1000_PG = Figure("0.15", REPORT, "| postgres (this database) | 0.02 (7%) | 0.08 (8%) | 0.15 (8%) | 0.15 (8%) |")
P1000_REDIS = Figure("0.04", REPORT, "| redis (shared server) | 0.01 (3%) | 0.03 (3%) | 0.04 (2%) | 0.05 (2%) |")
P500_RPS = Figure("239", REPORT, "| 500 | 239 | 5.1 | 15.5 | 26.2 |")
_P500_CPU = "### 500 users: machine 52% busy (1.02 cores, of which other processes 0.03)"
P500_MACHINE = Figure("1.02", REPORT, _P500_CPU)
P500_OTHER = Figure("0.03", REPORT, _P500_CPU)
P2000_RPS = Figure("564", REPORT, "| 2,000 | 564 | 1,416 | 1,866 |")
_P2000_CPU = "### 2,000 users: machine 99% busy (1.97 cores, of which other processes 0.06)"
P2000_MACHINE = Figure("1.97", REPORT, _P2000_CPU)
P2000_OTHER = Figure("0.06", REPORT, _P2000_CPU)
_PUBLIC_CEILING_ROW = "| Public site | 3,925 | 98% | 648 | 100 | 147 | 273 | 354 | 0 | 0.00 | 98% |"
PUBLIC_CEILING_RPS = Figure("648", REPORT, _PUBLIC_CEILING_ROW)
PUBLIC_CEILING_BUSY_PCT = Figure("98", REPORT, _PUBLIC_CEILING_ROW)
P100_OTHER = Figure("0.04", REPORT, "### 100 users: machine 15% busy (0.31 cores, of which other processes 0.04)")

# --- make bench (benchmarks.md, "HTTP benchmarks (make bench)") ---------------------------------------------
BENCH_FORM_VOTE = Figure("766", BENCHMARKS, "(`POST /p/<slug>/vote/`, HTMX, CSRF, new voter each) | 766 |")
BENCH_JSON_VOTE = Figure("988", BENCHMARKS, "| JSON vote (`POST /api/votes/`, new voter each) | 988 |")
BENCH_RESULTS = Figure("1,854", BENCHMARKS, "| results (`GET /api/polls/<id>/results/`) | 1,854 |")

# --- make bench-live (benchmarks.md, "Live results (make bench-live)") ----------------------------------------
LIVE_VOTES_PER_S = Figure("200.0", BENCHMARKS, "| stack | 1,000 | 1,000 | 200.0 |")
LIVE_5000_VIEWERS = Figure("5,000", BENCHMARKS, "| stack | 5,000 | 5,000 | 200.0 |")
LIVE_1000_WEB1_PCT = Figure("22.1", BENCHMARKS, "| stack | 1,000 | web :8191 (gunicorn) | 22.1 |")
LIVE_1000_WEB2_PCT = Figure("21.8", BENCHMARKS, "| stack | 1,000 | web :8192 (gunicorn) | 21.8 |")
LIVE_100_PUSHES = Figure("3.98", BENCHMARKS, "| 284 | 245 | 246 | 100% | 3.98 |")
LIVE_1000_PUSHES = Figure("3.97", BENCHMARKS, "| 444 | 309 | 313 | 100% | 3.97 |")
LIVE_5000_PUSHES = Figure("1.57", BENCHMARKS, "| 1,368 | 1,067 | 959 | 100% | 1.57 |")
LIVE_100_WS1_PCT = Figure("1.0", BENCHMARKS, "| stack | 100 | ws :8201 (uvicorn) | 1.0 |")
LIVE_100_WS2_PCT = Figure("1.1", BENCHMARKS, "| stack | 100 | ws :8202 (uvicorn) | 1.1 |")
LIVE_1000_WS1_PCT = Figure("4.8", BENCHMARKS, "| stack | 1,000 | ws :8201 (uvicorn) | 4.8 |")
LIVE_1000_WS2_PCT = Figure("4.8", BENCHMARKS, "| stack | 1,000 | ws :8202 (uvicorn) | 4.8 |")
LIVE_5000_WS1_PCT = Figure("10.0", BENCHMARKS, "| stack | 5,000 | ws :8201 (uvicorn) | 10.0 |")
LIVE_5000_WS2_PCT = Figure("9.9", BENCHMARKS, "| stack | 5,000 | ws :8202 (uvicorn) | 9.9 |")
LIVE_KIB_PER_VIEWER = Figure("30", BENCHMARKS, "ASGI memory: about 30 KiB per connected viewer")
FRAGMENT_KB = Figure("2", BENCHMARKS, "a results fragment is 1–2 KB")
NGINX_WORKER_CONNECTIONS = Figure("16,384", BENCHMARKS, "after raising nginx's `worker_connections` to 16,384")

# --- Reconciliation (benchmarks.md, "Reconciliation (make bench-reconcile)") --------------------------------
_RECONCILE_ROW = "| every poll with a ballot in the last 15 minutes (no checkpoint: Redis lost it) | 10,000 | 12.23 |"
RECONCILE_POLLS = Figure("10,000", BENCHMARKS, _RECONCILE_ROW)
RECONCILE_SECONDS = Figure("12.23", BENCHMARKS, _RECONCILE_ROW)
RECONCILE_SETTLE_S = Figure("0.5", "polls/tallies/reconcile.py", "SETTLE_SECONDS = 0.5")
RECONCILE_BATCH = Figure("500", "polls/tallies/reconcile.py", "BATCH_SIZE = 500")
RECONCILE_EVERY_S = Figure("10.0", "crowdtick/settings.py", '"polls.tasks.reconcile_tallies", "schedule": 10.0')

# --- Settings and code ---------------------------------------------------------------------------------------
LIVE_SENDS_PER_SECOND = Figure("5000", "crowdtick/settings.py", 'env_int("LIVE_SENDS_PER_SECOND", 5000')
TICK_S = Figure("0.25", "realtime/broadcaster.py", "TICK_SECONDS = 0.25")
WEB_WORKERS = Figure("1", "deploy/gunicorn.conf.py", 'os.environ.get("WEB_WORKERS", "1")')
WEB_THREADS = Figure("8", "deploy/gunicorn.conf.py", 'os.environ.get("WEB_THREADS", "8")')
# Group commit: server CPU of one ballot's insert in a multi-row statement of 8 (a web process's threads).
INSERT_US_PER_ROW = Figure("28", "polls/ballot_box.py", "28 µs for 8")
VOTER_KEY_BYTES = Figure("16", "polls/voters.py", "secrets.token_urlsafe(16)")  # 22 characters of base64
IP_HASH_CHARS = Figure("64", "polls/models.py", "ip_hash = models.CharField(max_length=64, blank=True)")
SLUG_CHARS = Figure("10", "polls/models.py", "SLUG_LENGTH = 10")
OWNER_HASH_CHARS = Figure("64", "polls/models.py", "owner_token_hash = models.CharField(max_length=64")
CODE_CHARS = Figure("6", "polls/models.py", "EVENT_CODE_DIGITS = 6")
# An owner page's grouped queries over its poll's ballots (docs/scaling.md, "Per request").
OWNER_PAGE_MS = Figure("200", "docs/scaling.md", "200 ms for a poll of 100,000 ballots")
OWNER_PAGE_BALLOTS = Figure("100,000", "docs/scaling.md", "200 ms for a poll of 100,000 ballots")
PUBLISH_PER_POLL_S = Figure("12", BENCHMARKS, "≤ 12 PUBLISH per poll per second")

# === Derived per-unit costs (cores × seconds per operation, i.e. seconds of one core) ========================

# Sizing budget: each pool half busy in the busiest 10 s. The hall met its p95 target at 1,000 users with the
# busiest 10 s 53% busy, and missed it at 2,000 with 96% (H1000_BURST_BUSY_PCT; REPORT's hall per-step table).
TARGET_BUSY = 0.5
# A sizing choice, not a measurement: a large, common database machine. PostgreSQL spreads over cores
# through its backends (unlike one gunicorn process), but the model's per-core figures are from 2 cores.
PG_PRIMARY_CORES = 32
# The stack every figure here was measured on (Procfile): 2 gunicorn instances, 2 uvicorn processes, one
# PostgreSQL, one Redis, with the broadcaster, Celery, nginx and the load generator, on the same 2 cores.
STACK_WEB_INSTANCES, STACK_WS_PROCESSES = 2, 2
# The most viewers any run put on one uvicorn process (bench-live: 5,000 over 2). A measured point, not a
# measured ceiling: the model never puts more sockets on a ws pod than this.
WS_MAX_MEASURED_VIEWERS = LIVE_5000_VIEWERS / STACK_WS_PROCESSES

# Web pod = one gunicorn instance (deploy/gunicorn.conf.py: 1 worker × 8 threads, one GIL-bound process,
# so at most one core). HTML form vote: bench-live's two gunicorn instances took 22.1% + 21.8% of a core
# for 200.0 votes/s (1,000 viewers): 2.2 ms of one core per vote.
WEB_CPU_FORM_VOTE = (LIVE_1000_WEB1_PCT + LIVE_1000_WEB2_PCT) / 100 / LIVE_VOTES_PER_S
# JSON votes and results reads: scaled by make bench's throughput against the HTML vote in the same run
# (988 and 1,854 against 766 req/s); there gunicorn's CPU is what saturates (benchmarks.md, "What saturates").
WEB_CPU_JSON_VOTE = WEB_CPU_FORM_VOTE * BENCH_FORM_VOTE / BENCH_JSON_VOTE
WEB_CPU_RESULTS = WEB_CPU_FORM_VOTE * BENCH_FORM_VOTE / BENCH_RESULTS
# gunicorn's share of a saturated machine: 1.34 of the 1.97 cores the public site used at 2,000 users.
WEB_SHARE_SATURATED = P2000_WEB / P2000_MACHINE

# Public site, per request of its mix (create : vote : read = 1 : 5 : 3), from the 1,000-user step (the last
# that met its target): each role's cores divided by 474 req/s; "stack" is the machine less other processes.
PUBLIC_CPU = {
    "web": P1000_WEB / P1000_RPS,
    "postgres": P1000_PG / P1000_RPS,
    "redis": P1000_REDIS / P1000_RPS,
    "stack": (P1000_MACHINE - P1000_OTHER) / P1000_RPS,  # every role, the load generator included
}
PUBLIC_RPS_PER_USER = P1000_RPS / P1000_USERS
PUBLIC_VOTES_PER_USER = (P1000_FORM_VOTES + P1000_API_VOTES) / P1000_USERS
PUBLIC_CREATES_PER_USER = P1000_CREATES / P1000_USERS


# Hall: every role's cores = phones × B + votes/s × V. B is what a connected phone costs (its socket, its
# reloads, the load generator's loop); V what a vote brings (its request, the phone's new region, the socket
# told "voted"). Two readings of the 2,000-user step fix both per role: the step's mean (votes spread over
# the minute) and its busiest 10 s (10 of the 13 s in which the minute's votes land).
def votes_per_s(votes_per_min: float, *, burst: bool) -> float:
    if not burst:
        return votes_per_min / 60
    spread = VOTE_TO_S - VOTE_FROM_S
    return votes_per_min * min(BUSIEST_S, spread) / spread / BUSIEST_S


def _hall_fit() -> dict[str, tuple[float, float]]:
    mean = {"web": H2000_WEB, "postgres": H2000_PG, "ws": H2000_WS, "generator": H2000_GEN}
    burst = {"web": H2000_BURST_WEB, "postgres": H2000_BURST_PG, "ws": H2000_BURST_WS, "generator": H2000_BURST_GEN}
    # nginx, Redis, the broadcaster and Celery: what the machine used besides the roles named.
    mean["rest"] = H2000_MACHINE - H2000_OTHER - sum(mean.values())
    burst["rest"] = H2000_BURST_MACHINE - H2000_OTHER - sum(burst.values())
    low, high = votes_per_s(H2000_VOTES_PER_MIN, burst=False), votes_per_s(H2000_VOTES_PER_MIN, burst=True)
    fit = {}
    for role in mean:
        per_vote = (burst[role] - mean[role]) / (high - low)
        fit[role] = ((mean[role] - per_vote * low) / H2000_USERS, per_vote)  # (per phone, per vote/s)
    return fit


HALL = _hall_fit()
HALL_VOTES_PER_PHONE_PER_MIN = H2000_VOTES_PER_MIN / H2000_USERS  # a vote per question, a tenth tapping again
# Redis per hall vote: all the hall's Redis CPU counted against its votes (an upper bound), at 4,000 users.
REDIS_CPU_HALL_VOTE = H4000_REDIS / votes_per_s(H4000_VOTES_PER_MIN, burst=False)


def hall_cores(phones: float, votes: float, roles=("web", "postgres", "ws", "rest", "generator")) -> float:
    return sum(HALL[role][0] * phones + HALL[role][1] * votes for role in roles)


# ws pod = one uvicorn process (one event loop: one core at most). Its CPU = a fixed cost + a cost per
# WebSocket send, from bench-live's 100 and 1,000 viewers (each process: half the viewers, pushes/viewer/s
# as measured); the 5,000-viewer step is left to check the fit.
def _ws_fit() -> tuple[float, float]:
    sends_100 = 100 / STACK_WS_PROCESSES * LIVE_100_PUSHES
    sends_1000 = 1_000 / STACK_WS_PROCESSES * LIVE_1000_PUSHES
    cpu_100 = (LIVE_100_WS1_PCT + LIVE_100_WS2_PCT) / 100 / STACK_WS_PROCESSES
    cpu_1000 = (LIVE_1000_WS1_PCT + LIVE_1000_WS2_PCT) / 100 / STACK_WS_PROCESSES
    per_send = (cpu_1000 - cpu_100) / (sends_1000 - sends_100)
    return cpu_100 - per_send * sends_100, per_send


WS_FIXED_CPU, WS_CPU_PER_SEND = _ws_fit()
PUSHES_PER_S = 1 / TICK_S  # the broadcaster's ceiling per poll


def pushes_per_viewer(viewers_per_process: float, sends_per_second: float = LIVE_SENDS_PER_SECOND) -> float:
    """realtime/hub.py: after handing a push to N viewers (N sends' CPU) the hub waits N / sends_per_second;
    the broadcaster offers a newer push every tick."""
    busy = viewers_per_process * (1 / sends_per_second + WS_CPU_PER_SEND)
    return min(PUSHES_PER_S, 1 / busy) if busy else PUSHES_PER_S


def viewers_at_full_rate(sends_per_second: float = LIVE_SENDS_PER_SECOND) -> int:
    """The most viewers one process gives 4 pushes a second under the hub's pacing."""
    return math.floor(TICK_S / (1 / sends_per_second + WS_CPU_PER_SEND))


# Reconciler (one Celery task, batches one after another): a 0.5 s settle per batch of 500 polls, and the
# rest of the 12.23 s measured for 10,000 polls is work per poll.
RECONCILE_CPU_PER_POLL = (RECONCILE_SECONDS - RECONCILE_POLLS / RECONCILE_BATCH * RECONCILE_SETTLE_S) / RECONCILE_POLLS


# Changed polls one pass covers within the beat's 10 s.
RECONCILE_POLLS_PER_PASS = RECONCILE_EVERY_S / (RECONCILE_SETTLE_S / RECONCILE_BATCH + RECONCILE_CPU_PER_POLL)


def reconcile_seconds(polls_changed: float) -> float:
    return math.ceil(polls_changed / RECONCILE_BATCH) * RECONCILE_SETTLE_S + polls_changed * RECONCILE_CPU_PER_POLL


# === Storage estimates (PostgreSQL's page layout; not measured) ================================================
# 8 KiB pages with a 24-byte header, 4-byte line pointers, 23-byte tuple headers (+ a null bitmap), 8-byte
# alignment; B-tree index tuples: 8-byte header + key. Leaves about 90% full for keys that only grow (the
# default fillfactor) and about 70% for keys inserted in random order.
PAGE, PAGE_HEADER, LINE_POINTER, TUPLE_HEADER, INDEX_TUPLE_HEADER = 8192, 24, 4, 23, 8


def _align(size: float, to: int = 8) -> int:
    return math.ceil(size / to) * to


def heap_bytes(columns: list[tuple[int, int]], *, column_count: int, has_nulls: bool) -> float:
    """Bytes a row takes in its table, page overhead included. `columns`: (size, alignment) of each value
    that is not NULL, in table order; a short text takes its length + 1 and aligns on 1."""
    offset = 0
    for size, alignment in columns:
        offset = _align(offset, alignment) + size
    header = _align(TUPLE_HEADER + (math.ceil(column_count / 8) if has_nulls else 0))
    rows_per_page = (PAGE - PAGE_HEADER) // (_align(header + offset) + LINE_POINTER)
    return PAGE / rows_per_page


def index_bytes(key: int, *, fill: float) -> float:
    return (_align(INDEX_TUPLE_HEADER + key) + LINE_POINTER) / fill


INT8, TIMESTAMPTZ, INT2, BOOL = (8, 8), (8, 8), (2, 2), (1, 1)


def text(chars: int) -> tuple[int, int]:
    return (chars + 1, 1)


VOTER_KEY_CHARS = math.ceil(VOTER_KEY_BYTES * 4 / 3)  # token_urlsafe: base64 without padding
# A ballot of a choice poll from a browser, columns in table order (migrations 0001, 0005, 0011): id,
# voter_key, ip_hash, ip_key (NULL unless the poll dedupes by address), choice_mask, submitted_at, poll_id,
# voided_at (NULL), void_reason (""), terms (""). Indexes: the primary key (grows), ballot_unique_voter
# (poll, voter key: random), ballot_poll_time_idx (poll, time: random across polls); BRIN is negligible.
BALLOT_BYTES = heap_bytes(
    [INT8, text(VOTER_KEY_CHARS), text(IP_HASH_CHARS), INT8, TIMESTAMPTZ, INT8, text(0), text(0)],
    column_count=10,
    has_nulls=True,
) + (index_bytes(8, fill=0.9) + index_bytes(8 + VOTER_KEY_CHARS + 1, fill=0.7) + index_bytes(16, fill=0.7))
# A poll of 4 choices, a 60-character question, no description, not an event's: its row (the NULLs of
# opens_at, closes_at, archived_at, event, scale, max_words take nothing) and its indexes (primary key, slug
# and Django's pattern index on it, closes_at, opens_at, the unarchived partial, the open code, event), and
# per choice (15 characters) its row and indexes (primary key, poll, poll + position).
CHOICES, QUESTION_CHARS, CHOICE_CHARS = 4, 60, 15
POLL_BYTES = (
    heap_bytes(
        [INT8, text(SLUG_CHARS), text(QUESTION_CHARS), text(0), INT2, BOOL, text(6), text(7)]
        + [text(OWNER_HASH_CHARS), TIMESTAMPTZ, TIMESTAMPTZ, text(6), text(0), text(0), text(CODE_CHARS)]
        + [(6, 4), BOOL],  # hidden_terms '[]' (jsonb), profanity_filter
        column_count=25,
        has_nulls=True,
    )
    + 2 * index_bytes(SLUG_CHARS + 1, fill=0.7)
    + index_bytes(8, fill=0.9)
    + 4 * index_bytes(8, fill=0.9)
    + index_bytes(CODE_CHARS + 1, fill=0.7)
    + CHOICES
    * (
        heap_bytes([INT8, text(CHOICE_CHARS), INT2, INT8], column_count=4, has_nulls=False)
        + 2 * index_bytes(8, fill=0.9)
        + index_bytes(10, fill=0.9)
    )
)
# Redis per poll (estimate from the keys polls/tallies and polls/poll_cache write, with Redis's per-key
# overhead of about 50 bytes and small hashes packed): the tally (6 fields: 4 choices, total, version),
# the shared copy (about 500 bytes of JSON: 26 fields and 4 choices; polls served in the last hour), the
# revision (changed in the last day) and the per-minute counts (a field a minute, polls voted in 2 hours).
REDIS_TALLY_BYTES = 50 + 6 * 2 * 12
REDIS_ACTIVE_POLL_BYTES = REDIS_TALLY_BYTES + (50 + 500) + (50 + 30) + (50 + 60 * 14 + 70)

# === The check: the model against the figures measured here ===========================================


@dataclass(frozen=True)
class Check:
    what: str
    predicted: float
    measured: float

    @property
    def ratio(self) -> float:
        return self.predicted / self.measured

    @property
    def within(self) -> bool:
        return 0.7 <= self.ratio <= 1.3


def checks() -> list[Check]:
    """The stack as measured: every role on the same 2 cores. Each prediction is built from other runs or other
    steps than the figure it meets; the two saturated req/s take the machine's measured busy cores as input."""
    ws_viewers = LIVE_5000_VIEWERS / STACK_WS_PROCESSES
    ws_pushes = pushes_per_viewer(ws_viewers)
    hall_spare = MACHINE_CORES - H100_OTHER - HALL_CEILING_USERS * hall_cores(1, 0)
    public_cores = PUBLIC_CPU["stack"]
    return [
        Check(
            "make bench: HTML form votes/s (gunicorn's share of the 2 cores ÷ its CPU per vote in bench-live)",
            MACHINE_CORES * WEB_SHARE_SATURATED / WEB_CPU_FORM_VOTE,
            BENCH_FORM_VOTE,
        ),
        Check(
            "make bench-live, 5,000 viewers on 2 ws processes: pushes per viewer per second",
            ws_pushes,
            LIVE_5000_PUSHES,
        ),
        Check(
            "make bench-live, 5,000 viewers: CPU per ws process (% of a core)",
            100 * (WS_FIXED_CPU + ws_viewers * ws_pushes * WS_CPU_PER_SEND),
            (LIVE_5000_WS1_PCT + LIVE_5000_WS2_PCT) / STACK_WS_PROCESSES,
        ),
        Check(
            "public site, 500 users: cores used (machine less other processes)",
            P500_RPS * public_cores,
            P500_MACHINE - P500_OTHER,
        ),
        Check(
            "public site at 2,000 users (99% busy, saturated): req/s",
            (P2000_MACHINE - P2000_OTHER) / public_cores,
            P2000_RPS,
        ),
        Check(
            "public site mix ceiling: req/s",
            (MACHINE_CORES * PUBLIC_CEILING_BUSY_PCT / 100 - P100_OTHER) / public_cores,
            PUBLIC_CEILING_RPS,
        ),
        Check(
            "hall, 1,000 users: cores used over the step",
            hall_cores(H1000_USERS, votes_per_s(H1000_VOTES_PER_MIN, burst=False)),
            H1000_MACHINE - H1000_OTHER,
        ),
        Check(
            "hall, 1,000 users: cores used in the busiest 10 s",
            hall_cores(H1000_USERS, votes_per_s(H1000_VOTES_PER_MIN, burst=True)),
            MACHINE_CORES * H1000_BURST_BUSY_PCT / 100 - H1000_OTHER,
        ),
        Check(
            "hall, 4,000 users: cores used over the step",
            hall_cores(H4000_USERS, votes_per_s(H4000_VOTES_PER_MIN, burst=False)),
            H4000_MACHINE - H4000_OTHER,
        ),
        Check(
            "hall mix ceiling: req/s (each vote followed by a new page and socket, taken to cost what a vote does)",
            2 * hall_spare / (2 * hall_cores(0, 1)),
            HALL_CEILING_RPS,
        ),
    ]


# === Sizing ==============================================================================================
# Each pool sized to be half busy (TARGET_BUSY) in the busiest 10 s; only production roles (no load generator).


def pods(cores: float, *, cores_per_pod: float = 1) -> int:
    return max(1, math.ceil(cores / (cores_per_pod * TARGET_BUSY)))


@dataclass(frozen=True)
class HotPoll:
    phones: int
    votes_per_s: float  # in the busiest 10 s
    web_pods: int
    ws_pods_live: int  # every phone shown live results at 4 pushes/s
    ws_pods_event: int  # an event's phones: a push when the presenter acts
    redis_shard_load: float  # the poll's shard: its busiest-10-s CPU over its budget (half a core)
    pg_cores: float  # to provision, so that PostgreSQL is half busy
    ballots: int  # a question's
    egress_gbit_s: float  # live results at 4 pushes/s, fragments at their largest


def size_hot_poll(phones: int) -> HotPoll:
    """A hall of `phones` on one poll: votes as the hall's phones vote (a minute's in 13 s)."""
    votes = votes_per_s(phones * HALL_VOTES_PER_PHONE_PER_MIN, burst=True)
    ws_event_cpu = hall_cores(phones, votes, roles=("ws",))
    live_cpu = ws_event_cpu + phones * PUSHES_PER_S * WS_CPU_PER_SEND
    return HotPoll(
        phones=phones,
        votes_per_s=votes,
        web_pods=pods(hall_cores(phones, votes, roles=("web",)), cores_per_pod=WEB_WORKERS),
        ws_pods_live=max(math.ceil(phones / viewers_at_full_rate()), pods(live_cpu)),
        ws_pods_event=max(math.ceil(phones / WS_MAX_MEASURED_VIEWERS), pods(ws_event_cpu)),
        redis_shard_load=votes * REDIS_CPU_HALL_VOTE / TARGET_BUSY,
        pg_cores=hall_cores(phones, votes, roles=("postgres",)) / TARGET_BUSY,
        ballots=phones,
        egress_gbit_s=phones * PUSHES_PER_S * FRAGMENT_KB * 1024 * 8 / 1e9,
    )


@dataclass(frozen=True)
class ManyPolls:
    polls: int
    visitors: int
    rps: float
    votes_per_s: float
    creates_per_s: float
    web_pods: int
    ws_pods: int  # each visitor holding its poll's page open
    redis_shards: int
    redis_mb: float
    pg_cores: float  # to provision, so that PostgreSQL is half busy
    db_gb: float
    reconcile_s: float  # a pass over the polls changed in the last 10 s
    broadcaster_pushes_per_s: float  # changed polls a second, were each watched


VISITORS_PER_POLL = 1  # an assumption: one visitor at the public profile's pace per poll in use
BALLOTS_PER_POLL = 1_000  # an assumption, for the database's size


def _share_changed(votes_per_poll: float) -> float:
    """Share of polls with at least one vote in a period, votes spread evenly (the most polls changed)."""
    return 1 - math.exp(-votes_per_poll)


def size_many_polls(polls: int) -> ManyPolls:
    """`polls` in use, each with VISITORS_PER_POLL visitors doing what the public profile's visitors do."""
    visitors = polls * VISITORS_PER_POLL
    rps = visitors * PUBLIC_RPS_PER_USER
    votes = visitors * PUBLIC_VOTES_PER_USER
    return ManyPolls(
        polls=polls,
        visitors=visitors,
        rps=rps,
        votes_per_s=votes,
        creates_per_s=visitors * PUBLIC_CREATES_PER_USER,
        web_pods=pods(rps * PUBLIC_CPU["web"], cores_per_pod=WEB_WORKERS),
        ws_pods=max(1, math.ceil(visitors / WS_MAX_MEASURED_VIEWERS)),
        redis_shards=pods(rps * PUBLIC_CPU["redis"]),
        redis_mb=polls * REDIS_ACTIVE_POLL_BYTES / 1e6,
        pg_cores=rps * PUBLIC_CPU["postgres"] / TARGET_BUSY,
        db_gb=polls * (POLL_BYTES + BALLOTS_PER_POLL * BALLOT_BYTES) / 1e9,
        reconcile_s=reconcile_seconds(polls * _share_changed(votes * RECONCILE_EVERY_S / polls)),
        broadcaster_pushes_per_s=polls * _share_changed(votes * TICK_S / polls) * PUSHES_PER_S,
    )


@dataclass(frozen=True)
class Limit:
    unit: str
    at: float  # the load at which one unit is half busy
    scales_out: bool  # whether adding units of it carries more of this load


def hot_poll_limits() -> list[Limit]:
    """Phones on one hot poll at which one unit reaches its budget, lowest first."""
    votes = votes_per_s(HALL_VOTES_PER_PHONE_PER_MIN, burst=True)  # a phone's, in the busiest 10 s
    ws_live = hall_cores(1, votes, roles=("ws",)) + PUSHES_PER_S * WS_CPU_PER_SEND
    limits = [
        Limit("web pod", WEB_WORKERS * TARGET_BUSY / hall_cores(1, votes, roles=("web",)), True),
        Limit("ws pod (live results, 4 pushes/s)", min(viewers_at_full_rate(), TARGET_BUSY / ws_live), True),
        Limit("the Redis shard holding the poll", TARGET_BUSY / (votes * REDIS_CPU_HALL_VOTE), False),
        Limit(
            f"PostgreSQL primary ({PG_PRIMARY_CORES} cores)",
            PG_PRIMARY_CORES * TARGET_BUSY / hall_cores(1, votes, roles=("postgres",)),
            False,
        ),
    ]
    return sorted(limits, key=lambda limit: limit.at)


def many_polls_limits() -> list[Limit]:
    """Polls in use (VISITORS_PER_POLL visitors each) at which one unit reaches its budget, lowest first."""
    rps = VISITORS_PER_POLL * PUBLIC_RPS_PER_USER  # a poll's
    changed = _share_changed(VISITORS_PER_POLL * PUBLIC_VOTES_PER_USER * RECONCILE_EVERY_S)
    limits = [
        Limit("web pod", WEB_WORKERS * TARGET_BUSY / (rps * PUBLIC_CPU["web"]), True),
        Limit("Redis shard", TARGET_BUSY / (rps * PUBLIC_CPU["redis"]), True),
        Limit("ws pod (sockets)", WS_MAX_MEASURED_VIEWERS / VISITORS_PER_POLL, True),
        Limit("reconciler (one task, a pass every 10 s)", RECONCILE_POLLS_PER_PASS / changed, False),
        Limit(
            f"PostgreSQL primary ({PG_PRIMARY_CORES} cores)",
            PG_PRIMARY_CORES * TARGET_BUSY / (rps * PUBLIC_CPU["postgres"]),
            False,
        ),
    ]
    return sorted(limits, key=lambda limit: limit.at)


def saturates_first(limits: list[Limit], load: float) -> str:
    """The first unit this load overruns that more units of it cannot relieve; else the first pods to add."""
    for limit in limits:
        if not limit.scales_out and load > limit.at:
            return limit.unit
    return "pods only: " + ", then ".join(limit.unit for limit in limits if limit.scales_out and load > limit.at)


# === Output ==============================================================================================


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _per_core(cpu: float) -> str:
    return _n(1 / cpu)


def units_table() -> list[str]:
    public_votes = PUBLIC_VOTES_PER_USER * P1000_USERS
    rows = [
        (
            "web pod",
            "HTML form votes/s",
            _per_core(WEB_CPU_FORM_VOTE),
            "bench-live: 22.1% + 21.8% of a core, 200 votes/s",
        ),
        ("web pod", "JSON votes/s", _per_core(WEB_CPU_JSON_VOTE), "the above × 988 / 766 (make bench)"),
        ("web pod", "results reads/s (API)", _per_core(WEB_CPU_RESULTS), "the above × 1,854 / 766 (make bench)"),
        (
            "web pod",
            "public-site requests/s (its mix)",
            _per_core(PUBLIC_CPU["web"]),
            "loadtest: 1.21 cores, 474 req/s",
        ),
        (
            "web pod",
            "hall votes/s (with their page and socket)",
            _per_core(HALL["web"][1]),
            "loadtest hall, 2,000 users",
        ),
        (
            "ws pod",
            "viewers at 4 pushes/s",
            _n(viewers_at_full_rate()),
            f"hub pacing (LIVE_SENDS_PER_SECOND {LIVE_SENDS_PER_SECOND:.0f}) + {WS_CPU_PER_SEND * 1e6:.0f} µs a send",
        ),
        ("ws pod", "sends/s of one core", _per_core(WS_CPU_PER_SEND), "bench-live; no run passed 3,925 a process"),
        ("ws pod", "memory per viewer", f"{LIVE_KIB_PER_VIEWER:.0f} KiB", "bench-live"),
        (
            "PostgreSQL",
            "ballots/s per core, the insert alone",
            _per_core(INSERT_US_PER_ROW / 1e6),
            "ballot_box: 28 µs a row",
        ),
        (
            "PostgreSQL",
            "public-site votes/s per core (all its SQL)",
            _per_core(P1000_PG / public_votes),
            "loadtest: 0.15 cores, 180 votes/s",
        ),
        (
            "PostgreSQL",
            "hall votes/s per core (all its SQL)",
            _per_core(HALL["postgres"][1]),
            "loadtest hall, 2,000 users",
        ),
        ("Redis shard", "public-site requests/s", _per_core(PUBLIC_CPU["redis"]), "loadtest: 0.04 cores, 474 req/s"),
        ("Redis shard", "hall votes/s (all its commands)", _per_core(REDIS_CPU_HALL_VOTE), "loadtest hall: 0.02 cores"),
        ("PostgreSQL", "bytes per ballot (estimate)", _n(BALLOT_BYTES), "schema and page layout"),
        ("PostgreSQL", "bytes per poll of 4 choices (estimate)", _n(POLL_BYTES), "schema and page layout"),
        ("Redis", "bytes per poll voted in the last hour (estimate)", _n(REDIS_ACTIVE_POLL_BYTES), "its keys"),
    ]
    lines = ["| unit | what | one unit, one core at 100% | from |", "| --- | --- | ---: | --- |"]
    return lines + [f"| {unit} | {what} | {value} | {source} |" for unit, what, value, source in rows]


def checks_table() -> list[str]:
    lines = ["| figure | predicted | measured | ratio | within ±30% |", "| --- | ---: | ---: | ---: | --- |"]
    for check in checks():
        digits = 2 if check.measured < 20 else 0
        lines.append(
            f"| {check.what} | {_n(check.predicted, digits)} | {_n(check.measured, digits)} | {check.ratio:.2f} "
            f"| {'yes' if check.within else '**no**'} |"
        )
    return lines


def limits_table(limits: list[Limit], load: str) -> list[str]:
    lines = [f"| unit | {load} at which one unit is half busy | more units help |", "| --- | ---: | --- |"]
    return lines + [f"| {limit.unit} | {_n(limit.at)} | {'yes' if limit.scales_out else 'no'} |" for limit in limits]


def _pg(cores: float) -> str:
    if cores <= PG_PRIMARY_CORES:
        return f"{cores:,.1f}: 1 primary + 1 replica"
    return f"{cores:,.1f}: **{cores / PG_PRIMARY_CORES:.1f}× one primary**"


def hot_poll_table() -> list[str]:
    limits = hot_poll_limits()
    lines = [
        "| phones | votes/s (busiest 10 s) | web pods | ws pods: live / event | the poll's Redis shard "
        "| PostgreSQL cores | a question's ballots | egress, live | saturates first |",
        "| ---: | ---: | ---: | --- | ---: | --- | ---: | ---: | --- |",
    ]
    for phones in (10_000, 100_000, 1_000_000):
        s = size_hot_poll(phones)
        lines.append(
            f"| {_n(phones)} | {_n(s.votes_per_s)} | {s.web_pods} | {s.ws_pods_live} / {s.ws_pods_event} "
            f"| {s.redis_shard_load:.1f}× its budget | {_pg(s.pg_cores)} "
            f"| {_n(s.ballots)}: {s.ballots * BALLOT_BYTES / 1e6:,.0f} MB | {s.egress_gbit_s:,.1f} Gbit/s "
            f"| {saturates_first(limits, phones)} |"
        )
    return lines


def many_polls_table() -> list[str]:
    s = size_many_polls(100_000)
    return [
        "| polls | visitors | req/s | votes/s | web pods | ws pods | Redis shards (memory) | PostgreSQL cores "
        "| database | reconcile pass | broadcaster pushes/s | saturates first |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | --- |",
        f"| {_n(s.polls)} | {_n(s.visitors)} | {_n(s.rps)} | {_n(s.votes_per_s)} | {s.web_pods} | {s.ws_pods} "
        f"| {s.redis_shards} ({s.redis_mb:,.0f} MB) | {_pg(s.pg_cores)} | {s.db_gb:,.0f} GB "
        f"| {s.reconcile_s:,.0f} s, every {RECONCILE_EVERY_S:.0f} s | {_n(s.broadcaster_pushes_per_s)} "
        f"| {saturates_first(many_polls_limits(), s.polls)} |",
    ]


def notes() -> list[str]:
    """Figures the text of docs/scaling.md cites, computed here so that they move with the model."""
    big = size_hot_poll(1_000_000)
    spread = VOTE_TO_S - VOTE_FROM_S
    many = size_many_polls(100_000)
    per_vote_public_pg = P1000_PG / (PUBLIC_VOTES_PER_USER * P1000_USERS)
    sockets_per_nginx = NGINX_WORKER_CONNECTIONS / 2  # each proxied WebSocket holds two connections
    owner_page_s = OWNER_PAGE_MS / 1e3 * 1_000_000 / OWNER_PAGE_BALLOTS
    live_cpu = hall_cores(big.phones, big.votes_per_s, roles=("ws",)) + big.phones * PUSHES_PER_S * WS_CPU_PER_SEND
    return [
        f"- A hall's votes land in {spread:.0f} s of each minute: its busiest 10 s carry "
        f"{votes_per_s(60, burst=True):.1f}× the minute's mean rate.",
        f"- 1,000,000 phones: {pods(live_cpu)} ws pods if each used its core (LIVE_SENDS_PER_SECOND raised; "
        f"{big.ws_pods_live} at today's pacing); {math.ceil(big.phones / sockets_per_nginx):,} nginx workers "
        f"at {sockets_per_nginx:,.0f} WebSockets each; the channel layer hands each push to every ws pod: "
        f"{big.ws_pods_live * PUBLISH_PER_POLL_S:,.0f} messages/s at most; its {big.web_pods} web pods hold "
        f"{big.web_pods * WEB_WORKERS * WEB_THREADS:,.0f} PostgreSQL connections (one a thread).",
        f"- 1,000,000 phones, PostgreSQL cores to provision were a hall vote to cost what a public-site vote does "
        f"({per_vote_public_pg * 1e3:.2f} ms): {big.votes_per_s * per_vote_public_pg / TARGET_BUSY:,.0f}; "
        f"were it to cost the insert alone ({INSERT_US_PER_ROW:.0f} µs): "
        f"{big.votes_per_s * INSERT_US_PER_ROW / 1e6 / TARGET_BUSY:,.1f}.",
        f"- An owner page of a poll of 1,000,000 ballots: about {owner_page_s:,.0f} s "
        f"of grouped queries (linear from {OWNER_PAGE_MS:.0f} ms at {OWNER_PAGE_BALLOTS:,.0f}).",
        f"- 100,000 polls at the public pace: {many.creates_per_s:,.0f} new polls/s and "
        f"{many.votes_per_s * 86_400 / 1e9:,.2f} billion ballots a day "
        f"({many.votes_per_s * 86_400 * BALLOT_BYTES / 1e9:,.0f} GB a day); were each poll watched, one broadcaster "
        f"process stays within half a core only if a push costs it under "
        f"{TARGET_BUSY / many.broadcaster_pushes_per_s * 1e6:,.0f} µs.",
        f"- The reconciler covers {RECONCILE_POLLS_PER_PASS:,.0f} changed polls per {RECONCILE_EVERY_S:.0f} s pass; "
        "with one settle per pass instead of one per batch, "
        f"{(RECONCILE_EVERY_S - RECONCILE_SETTLE_S) / RECONCILE_CPU_PER_POLL:,.0f}.",
    ]


def render() -> str:
    out = ["### Per unit", "", *units_table(), "", "### The model against this machine", "", *checks_table()]
    out += ["", "### One hot poll", "", *limits_table(hot_poll_limits(), "phones"), "", *hot_poll_table()]
    out += ["", "### 100,000 polls", "", *limits_table(many_polls_limits(), "polls, one visitor each"), ""]
    out += [*many_polls_table(), "", "### Figures the text cites", "", *notes()]
    return "\n".join(out) + "\n"


DOC = ROOT / "docs" / "scaling.md"
BEGIN, END = "<!-- capacity-model:begin -->", "<!-- capacity-model:end -->"


def write(doc: Path = DOC) -> None:
    """Replaces what lies between the markers in docs/scaling.md with this model's output."""
    text = doc.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{BEGIN}\n{render()}{END}{tail}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
        print(f"capacity model: wrote {DOC.relative_to(ROOT)}")
    else:
        print(render(), end="")
