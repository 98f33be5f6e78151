#!/usr/bin/env python3
"""`make loadtest`: the production stack under stepped Locust load, an integrity check, the report.

Two load profiles (`--profile hall|public|both`, default both):

- hall: a keynote's hall, run as an event. Its presenter opens a question every 60 s for a 20 s
  window, then reveals the results; every phone in the hall follows the event on its WebSocket and
  votes in each window (through the page's form or the API); now and then a new poll. Steps 100 →
  4,000 users. Rate limits at their production defaults.
- public: a public polling site. A few hundred polls seeded through the API, thousands more
  created during the run; each visitor creates, votes and reads results in the ratio 1 : 5 : 3,
  1–5 s apart, over every poll it knows with a long tail of attention (loadtest/pollbook.py).
  Steps 100 → 2,000 users. Rate limits off (RATELIMIT_ENABLE=0): every poll comes from 127.0.0.1.

`both` runs the hall, then the public site, each on a stack of its own started fresh (two stacks
in sequence, the same database and Redis): the profiles differ in a setting the stack reads at
start (the rate limits), and neither's Locust users, CPU samples or step windows can leak into
the other's. Each profile:

1. starts the stack through scripts/stack (what `make stack` runs), on free ports;
2. seeds its polls (the hall: one event through `POST /api/events/`, a question per round of the
   run, at most 50; the public site: polls through the API);
3. measures the stack's /healthz ceiling (wrk, or Locust without it) and the profile's mix ceiling
   (its own users, 100 of them with no think time: a closed loop) in the same run, without rate
   limits (the hall's on a stack of their own, started just before the one its steps run on);
4. steps the users (Locust: a master and 2 worker processes, FastHttpUser), recording per step
   requests/s, latency percentiles per endpoint, errors and push latency, while a sampler reads
   CPU and memory of every process of the stack, PostgreSQL's backends, Redis and Locust;
5. checks every acknowledged vote is in PostgreSQL exactly once and the tallies equal the record
   (the hall: of the questions its presenter put on screen, each revealed first if the run stopped
   before its reveal; then the event is ended);

then docs/loadtest/REPORT.md and its charts show the profiles side by side (loadtest/report.py).
The raw data of each profile is in its own directory, RUN_DIR/hall and RUN_DIR/public.

Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/crowdtick_loadtest, created
if missing) and REDIS_URL (default redis://127.0.0.1:6379/1). Settings changed with --stack-env
apply to both profiles; the report lists them.
"""

import argparse
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import psutil  # noqa: E402
import psycopg  # noqa: E402

from crowdtick.database import ensure_database  # noqa: E402
from loadtest import integrity, report  # noqa: E402
from loadtest.sampler import Sampler  # noqa: E402
from loadtest.site import Site, seed_event, seed_polls  # noqa: E402
from loadtest.stack import ROOT, Stack, free_ports  # noqa: E402
from loadtest.stepstats import vote_window  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/crowdtick_loadtest"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/1"  # not make stack's 0: another database's tallies
LOCUST = Path(sys.executable).parent / "locust"
PROFILES = ("hall", "public")
EVENT_MAX_QUESTIONS = 50  # DESIGN.md, "Events"


# The hall keeps production rate limits, except the daily cap on new polls per address
# (RATELIMIT_POLLS_PER_ADDRESS_PER_DAY, 200): its creators, all on 127.0.0.1, pass it within the run.
HALL_STACK_ENV = {"RATELIMIT_POLLS_PER_ADDRESS_PER_DAY": "1000000"}


@dataclass
class Options:
    """One profile's run. The defaults are the hall's; `Options.for_profile` gives the public site's."""

    profile: str = "hall"
    steps: list[int] = field(default_factory=lambda: [100, 250, 500, 1000, 2000, 4000])
    step_seconds: float = 60
    settle_seconds: float = 10
    spawn_rate: float = 100
    mix: str = "voter=70,api=10,viewer=19,creator=1"
    wait_scale: float = 1.0
    round_seconds: float = 60
    window_seconds: float = 20  # the hall: each question takes votes for so long (times wait_scale)
    align_to_rounds: bool = True  # each measured window starts with a question round (stepstats.window_start)
    polls: int = 0  # the hall: the event's questions (0: one per round of the run, at most 50); public: polls seeded
    seed_via: str = "form"  # or "api"
    ceiling_seconds: float = 10  # 0 skips both ceilings
    mix_ceiling_users: int = 100
    mix_ceiling_seconds: float = 20
    locust_processes: int = 2
    sample_seconds: float = 1.0
    sample_uss: bool = False
    port_base: int | None = None
    stack_env: dict[str, str] = field(default_factory=lambda: dict(HALL_STACK_ENV))
    run_dir: Path | None = None
    out_dir: Path = ROOT / "docs" / "loadtest"
    label: str = ""
    command: str = "make loadtest"

    @classmethod
    def for_profile(cls, profile: str, **changes) -> "Options":
        """The profile's defaults, then `changes`; the public site's stack keeps its rate limits off
        unless `stack_env` sets RATELIMIT_ENABLE itself."""
        if profile not in PROFILES:
            raise ValueError(f"unknown load profile {profile!r}: {', '.join(PROFILES)}")
        if profile == "hall":
            stack_env = {**HALL_STACK_ENV, **changes.pop("stack_env", {})}
            return cls(profile="hall", **changes, stack_env=stack_env)
        stack_env = {"RATELIMIT_ENABLE": "0", **changes.pop("stack_env", {})}
        public = {
            "steps": [100, 500, 1000, 2000],
            "mix": "visitor=1",
            "polls": 300,
            "seed_via": "api",
            "align_to_rounds": False,  # no question rounds on a public site
        }
        return cls(profile="public", **{**public, **changes, "stack_env": stack_env})


def parse_args(argv: list[str] | None = None) -> list[Options]:
    """One Options per profile to run, in order."""
    hall, public = Options(), Options.for_profile("public")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=[*PROFILES, "both"], default="both", help="both: hall, then public")
    parser.add_argument(
        "--steps", help=f"users per step (default: hall {joined(hall.steps)}; public {joined(public.steps)})"
    )
    parser.add_argument("--step-seconds", type=float, default=hall.step_seconds, help="measured seconds a step")
    parser.add_argument("--settle-seconds", type=float, default=hall.settle_seconds)
    parser.add_argument("--spawn-rate", type=float, default=hall.spawn_rate, help="users started a second")
    parser.add_argument("--mix", default=hall.mix, help="the hall's user weights: voter, api, viewer, creator")
    parser.add_argument("--wait-scale", type=float, default=hall.wait_scale, help="multiplies think times")
    parser.add_argument("--round-seconds", type=float, default=hall.round_seconds, help="the hall: a question every …")
    parser.add_argument(
        "--window-seconds", type=float, default=hall.window_seconds, help="the hall: … open for votes for …"
    )
    parser.add_argument(
        "--no-align-to-rounds", dest="align_to_rounds", action="store_false", help="measure from any moment of a round"
    )
    parser.add_argument(
        "--polls",
        type=int,
        help="the hall: its event's questions (default: one per round of the run, at most "
        f"{EVENT_MAX_QUESTIONS}); public: polls seeded before the load (default {public.polls})",
    )
    parser.add_argument(
        "--ceiling-seconds", type=float, default=hall.ceiling_seconds, help="/healthz ceiling; 0 skips every ceiling"
    )
    parser.add_argument("--mix-ceiling-seconds", type=float, default=hall.mix_ceiling_seconds, help="measured seconds")
    parser.add_argument(
        "--mix-ceiling-users", type=int, default=hall.mix_ceiling_users, help="users without think time"
    )
    parser.add_argument("--locust-processes", type=int, default=hall.locust_processes)
    parser.add_argument("--port-base", type=int, help="nginx on it, gunicorn +1 +2, ASGI +3 +4, Locust +5")
    parser.add_argument("--stack-env", action="append", default=[], metavar="NAME=VALUE", help="a setting changed")
    parser.add_argument("--run-dir", type=Path, help="raw data of the run (default: a new temporary one)")
    parser.add_argument("--out-dir", type=Path, default=hall.out_dir, help="where REPORT.md and charts go")
    parser.add_argument("--label", default="", help="a line saying what this run is, at the top of the report")
    args = parser.parse_args(argv)
    if args.window_seconds + 5 > args.round_seconds:
        parser.error("--window-seconds: a question's window must end at least 5 s before the next round")
    if args.polls is not None and args.profile != "public" and not 1 <= args.polls <= EVENT_MAX_QUESTIONS:
        parser.error(f"--polls: the hall's event has 1 to {EVENT_MAX_QUESTIONS} questions")
    # The command as the report shows it: where the raw data went and the label change no figure.
    shown = without_options(argv or [], {"--run-dir", "--label"})
    command = "make loadtest" + (f" LOADTEST_ARGS={shlex.quote(shlex.join(shown))}" if shown else "")
    run_dir = args.run_dir or Path(f"/tmp/crowdtick-loadtest-{os.getuid()}") / time.strftime("%Y%m%d-%H%M%S")
    common = {
        "step_seconds": args.step_seconds,
        "settle_seconds": args.settle_seconds,
        "spawn_rate": args.spawn_rate,
        "wait_scale": args.wait_scale,
        "ceiling_seconds": args.ceiling_seconds,
        "mix_ceiling_seconds": args.mix_ceiling_seconds,
        "mix_ceiling_users": args.mix_ceiling_users,
        "locust_processes": args.locust_processes,
        "port_base": args.port_base,
        "stack_env": dict(item.split("=", 1) for item in args.stack_env),
        "out_dir": args.out_dir,
        "label": args.label,
        "command": command,
    }
    if args.steps:
        common["steps"] = [int(n) for n in args.steps.split(",")]
    if args.polls is not None:
        common["polls"] = args.polls
    hall_only = {
        "mix": args.mix,
        "round_seconds": args.round_seconds,
        "window_seconds": args.window_seconds,
        "align_to_rounds": args.align_to_rounds,
    }
    profiles = PROFILES if args.profile == "both" else [args.profile]
    return [
        Options.for_profile(profile, **common, **(hall_only if profile == "hall" else {}), run_dir=run_dir / profile)
        for profile in profiles
    ]


def joined(numbers: list[int]) -> str:
    return ",".join(map(str, numbers))


def without_options(argv: list[str], names: set[str]) -> list[str]:
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        elif arg.split("=", 1)[0] not in names:
            kept.append(arg)
    return kept


def run(options: Options) -> Path:
    """Runs one profile's load test on a stack of its own; returns the run directory (meta.json, steps.jsonl,
    samples.jsonl, acks-*.tsv, created-*.tsv, ...).

    A closed loop from one address is what rate limits exist to refuse, so with the limits on (the hall) the
    ceilings are measured first on a stack started without them; the steps then get a stack started with them.
    """
    run_dir = options.run_dir or Path(f"/tmp/crowdtick-loadtest-{os.getuid()}") / time.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    database_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    ensure_database(database_url)
    meta = {
        "options": {**asdict(options), "run_dir": str(run_dir), "out_dir": str(options.out_dir)},
        "started_at": time.time(),
        "machine": machine(database_url),
        "database_url": database_url,
        "redis_url": redis_url,
    }
    print(f"loadtest: {options.profile} profile, run directory {run_dir}", flush=True)

    def stack(name: str, ports: list[int], extra_env: dict[str, str]) -> Stack:
        return Stack(
            run_dir=run_dir / name, database_url=database_url, redis_url=redis_url, ports=ports[:5], extra_env=extra_env
        )

    sampler = Sampler(
        out=run_dir / "samples.jsonl",
        database_url=database_url,
        interval=options.sample_seconds,
        uss=options.sample_uss,
    )
    sampler.start()
    polls = None
    try:
        if options.ceiling_seconds and not rate_limits_off(options.stack_env):
            unlimited_env = {**options.stack_env, "RATELIMIT_ENABLE": "0"}
            with stack("ceiling-stack", ports_for(options), unlimited_env) as unlimited:
                sampler.watch(unlimited.process.pid)
                polls = seed(unlimited, options, run_dir)
                meta.update(measure_ceilings(unlimited.base_url, options, run_dir, sampler), ceilings_apart=True)
        ports = ports_for(options)
        with stack("stack", ports, options.stack_env) as steps_stack:
            sampler.watch(steps_stack.process.pid)
            if polls is not None:
                print(f"loadtest: the steps' stack up at {steps_stack.base_url}, rate limits on", flush=True)
            else:
                polls = seed(steps_stack, options, run_dir)
                if options.ceiling_seconds:
                    meta.update(measure_ceilings(steps_stack.base_url, options, run_dir, sampler))
            meta["locust"] = run_locust(steps_stack.base_url, options, run_dir, sampler, master_port=ports[5])
            created = read_created(run_dir)
            meta["created"] = dict(Counter(via for _, via in created))
            print(f"loadtest: {len(created):,} polls created during the run; checking integrity", flush=True)
            site = Site(steps_stack.base_url)
            seeded = [poll["slug"] for poll in polls]
            if options.profile == "hall":
                seeded = event_wrap_up(site, run_dir)
                meta["event"] = event_summary(run_dir, options, shown=len(seeded))
            meta["integrity"] = integrity.check(
                database_url=database_url,
                site=site,
                run_dir=run_dir,
                seeded_slugs=seeded,
                created_slugs=[slug for slug, _ in created],
            )
    finally:
        sampler.stop()
    meta["ended_at"] = time.time()
    (run_dir / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
    return run_dir


def ports_for(options: Options) -> list[int]:
    """nginx, gunicorn ×2, ASGI ×2, Locust's master: from --port-base, else free now."""
    return list(range(options.port_base, options.port_base + 6)) if options.port_base else free_ports(6)


def rate_limits_off(stack_env: dict[str, str]) -> bool:
    return report.rate_limits_off({"stack_env": stack_env})


def seed(stack: Stack, options: Options, run_dir: Path) -> list[dict]:
    """The polls that exist before the load, which every Locust process reads: the hall's event and its
    questions (event.json, with the owner token its presenter needs), the public site's polls (polls.json)."""
    if options.profile == "hall":
        event = seed_event(Site(stack.base_url), options.polls or questions_for(options))
        (run_dir / "event.json").write_text(json.dumps(event))
        print(
            f"loadtest: stack up at {stack.base_url}, an event of {len(event['questions'])} questions "
            f"(join code {event['code']})",
            flush=True,
        )
        return event["questions"]
    polls = seed_polls(Site(stack.base_url), options.polls, via=options.seed_via)
    (run_dir / "polls.json").write_text(json.dumps(polls))
    print(f"loadtest: stack up at {stack.base_url}, {len(polls)} polls seeded", flush=True)
    return polls


def questions_for(options: Options) -> int:
    """A question per round of the hall's run, at most 50: the mix ceiling's one, then as many as its steps'
    ramps, settles, waits for a round and windows last. With more rounds than that, the presenter goes back
    to the first question (`goto`), and a phone that answered it is handed to someone new."""
    round_seconds = options.round_seconds * options.wait_scale
    if round_seconds <= 0:
        return 2  # closed loops: one question for the ceiling, one for the steps
    seconds, users = 0.0, 0
    for step in options.steps:
        if step != users:  # equal steps follow each other at once (make soak)
            seconds += abs(step - users) / options.spawn_rate + options.settle_seconds
            seconds += round_seconds if options.align_to_rounds else 0
        seconds += options.step_seconds
        users = step
    return min(EVENT_MAX_QUESTIONS, 2 + math.ceil(seconds / round_seconds))


def measure_ceilings(base_url: str, options: Options, run_dir: Path, sampler: Sampler) -> dict:
    ceiling = measure_ceiling(base_url, options, run_dir, sampler)
    print(f"loadtest: /healthz ceiling {ceiling['rps']:,.0f} req/s", flush=True)
    mix_ceiling = measure_mix_ceiling(base_url, options, run_dir, sampler)
    print(f"loadtest: {options.profile} mix ceiling {mix_ceiling['rps']:,.0f} req/s", flush=True)
    return {"ceiling": ceiling, "mix_ceiling": mix_ceiling}


def measure_ceiling(base_url: str, options: Options, run_dir: Path, sampler: Sampler) -> dict:
    """As many /healthz requests a second as the stack answers: wrk if installed, else Locust."""
    started = time.time()
    seconds = int(options.ceiling_seconds)
    if shutil.which("wrk"):
        command = ["wrk", "-t2", "-c100", f"-d{seconds}s", "--latency", f"{base_url}/healthz"]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        (run_dir / "ceiling.txt").write_text(output)
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
        non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
        tool = "wrk, 2 threads, 100 connections"
        failures = int(non_2xx.group(1)) if non_2xx else 0
    else:
        prefix = run_dir / "ceiling"
        port = free_ports(1)[0]
        process = subprocess.Popen(
            [str(LOCUST), "-f", str(ROOT / "loadtest" / "ceiling.py"), "--headless", "--processes", "2",
             "-u", "100", "-r", "100", "-t", f"{seconds}s", "--host", base_url, "--csv", str(prefix),
             "--only-summary", "--master-bind-port", str(port), "--master-port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        sampler.watch(process.pid)
        process.wait()
        row = (prefix.parent / f"{prefix.name}_stats.csv").read_text().splitlines()[-1].split(",")
        rps, failures = float(row[9]), int(row[3])  # the "Aggregated" row: Requests/s, Failure Count
        tool = "Locust FastHttpUser, 2 processes, 100 users without waits"
    return {"rps": rps, "failures": failures, "tool": tool, "seconds": seconds, "started_at": started,
            "ended_at": time.time()}  # fmt: skip


def measure_mix_ceiling(base_url: str, options: Options, run_dir: Path, sampler: Sampler) -> dict:
    """The profile's own users with no think time (a closed loop): what the stack serves of this mix at most.

    Its votes and polls count in the run's integrity check like any other (acks-*.tsv, created-*.tsv).
    """
    closed_loop = replace(
        options,
        steps=[options.mix_ceiling_users],
        step_seconds=options.mix_ceiling_seconds,
        settle_seconds=5,  # longer than a worker's report interval (3 s): no request of the ramp is measured
        spawn_rate=options.mix_ceiling_users,
        wait_scale=0,
        align_to_rounds=False,
    )
    run_locust(
        base_url,
        closed_loop,
        run_dir,
        sampler,
        master_port=free_ports(1)[0],
        record="mix-ceiling.jsonl",
        log="mix-ceiling-locust.log",
    )
    step = json.loads((run_dir / "mix-ceiling.jsonl").read_text().splitlines()[-1])
    return {
        "users": options.mix_ceiling_users,
        "mix": options.mix,
        "seconds": step["seconds"],
        "rps": step["http"]["rps"],
        "http": step["http"],
        "all": step["all"],
        "names": step["names"],
        "started_at": step["started_at"],
        "ended_at": step["ended_at"],
    }


def read_shown(run_dir: Path) -> list[str]:
    """The questions the hall's presenter put on screen, in order (presenter-*.tsv: time, action, question)."""
    actions = sorted(
        line.split("\t") for path in run_dir.glob("presenter-*.tsv") for line in path.read_text().splitlines() if line
    )
    return list(dict.fromkeys(slug for _, _, slug in actions if slug))


def event_wrap_up(site: Site, run_dir: Path) -> list[str]:
    """After the hall's load: shows the results of every question the presenter put on screen that still
    hides them (the run stopped before that round's reveal; the mix ceiling's question is never revealed),
    then ends the event, as a presenter would. Returns those questions, whose tallies the integrity check
    compares: the results API shows an event's question only once revealed."""
    event = json.loads((run_dir / "event.json").read_text())
    shown = read_shown(run_dir)
    for slug in shown:
        if site.request("GET", f"/api/polls/{slug}/results/").status == 403:
            site.control_event(event, "goto", question=slug)
            site.control_event(event, "reveal")
    site.control_event(event, "end")
    return shown


def event_summary(run_dir: Path, options: Options, *, shown: int) -> dict:
    """What the report says of the hall's event; not its owner token."""
    event = json.loads((run_dir / "event.json").read_text())
    return {
        "id": event["id"],
        "code": event["code"],
        "questions": len(event["questions"]),
        "shown": shown,
        "window_seconds": vote_window(
            options.window_seconds, round_seconds=options.round_seconds, wait_scale=options.wait_scale
        ),
        "round_seconds": options.round_seconds * options.wait_scale,
    }


def read_created(run_dir: Path) -> list[tuple[str, str]]:
    """(slug, form|api) of every poll the users created, the mix ceiling's included."""
    return [
        tuple(line.split("\t"))
        for path in sorted(run_dir.glob("created-*.tsv"))
        for line in path.read_text().splitlines()
        if line
    ]


def run_locust(
    base_url: str,
    options: Options,
    run_dir: Path,
    sampler: Sampler,
    *,
    master_port: int,
    record: str = "steps.jsonl",
    log: str = "locust.log",
) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LOADTEST_OUT": str(run_dir),
        "LOADTEST_RECORD": record,
        "LOADTEST_PROFILE": options.profile,
        "LOADTEST_RUN_ID": uuid.uuid4().hex[:8],
        "LOADTEST_MIX": options.mix,
        "LOADTEST_STEPS": ",".join(map(str, options.steps)),
        "LOADTEST_STEP_SECONDS": str(options.step_seconds),
        "LOADTEST_SETTLE_SECONDS": str(options.settle_seconds),
        "LOADTEST_SPAWN_RATE": str(options.spawn_rate),
        "LOADTEST_WAIT_SCALE": str(options.wait_scale),
        "LOADTEST_ROUND_SECONDS": str(options.round_seconds),
        "LOADTEST_WINDOW_SECONDS": str(options.window_seconds),
        "LOADTEST_ALIGN_TO_ROUNDS": "1" if options.align_to_rounds else "0",
    }
    command = [
        str(LOCUST), "-f", str(ROOT / "loadtest" / "locustfile.py"), "--headless", "--host", base_url,
        "--processes", str(options.locust_processes), "--master-bind-port", str(master_port),
        "--master-port", str(master_port), "--only-summary", "--stop-timeout", "5",
    ]  # fmt: skip
    started = time.time()
    with (run_dir / log).open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=out, text=True, cwd=ROOT)
        sampler.watch(process.pid)
        echo = threading.Thread(target=_echo_progress, args=(process.stdout, out), daemon=True)
        echo.start()
        try:
            returncode = process.wait()
        except BaseException:
            process.terminate()
            process.wait(timeout=30)
            raise
        echo.join(timeout=5)
    if not (run_dir / record).exists():
        log_tail = "\n".join((run_dir / log).read_text().splitlines()[-20:])
        raise RuntimeError(f"Locust recorded no step (exit code {returncode}); its log ends with:\n{log_tail}")
    return {"command": shlex.join(command), "returncode": returncode, "started_at": started, "ended_at": time.time()}


def _echo_progress(stream, log) -> None:
    for line in stream:
        log.write(line)
        if line.startswith("loadtest:"):
            print(line, end="", flush=True)


def machine(database_url: str) -> dict:
    def version_of(command: list[str]) -> str:
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=10)
        except OSError:
            return "not installed"
        return (result.stdout or result.stderr).strip().splitlines()[0]

    cpu_model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor(),
    )  # fmt: skip
    with psycopg.connect(database_url) as connection:
        postgres = connection.execute("SHOW server_version").fetchone()[0]
    return {
        "cpu": cpu_model,
        "cores": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "locust": " ".join(version_of([str(LOCUST), "--version"]).split()[:2]),
        "postgres": postgres,
        "redis": version_of(["redis-server", "--version"]),
        "nginx": version_of(["nginx", "-v"]),
    }


def main() -> None:
    # SIGTERM unwinds like Ctrl-C, so Locust and the stack are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("loadtest: stopped"))
    profiles = parse_args(sys.argv[1:])
    for options in profiles:
        run(options)
    run_dir, out_dir = profiles[0].run_dir.parent, profiles[0].out_dir
    written = report.write(run_dir, out_dir)
    print(f"loadtest: wrote {written} from {run_dir}", flush=True)
    print(report.verdict_line(run_dir), flush=True)


if __name__ == "__main__":
    main()
