"""The load test report: its reading of CPU samples (a step's busiest seconds, not only its average) and the
profiles side by side."""

import json
from dataclasses import asdict, replace
from datetime import UTC, datetime

from loadtest.report import (
    PUSH,
    PUSH_BEFORE_EVENTS,
    busiest_window,
    nginx_request_times,
    percentiles,
    resources,
    runs_in,
    saturation,
    write,
)
from loadtest.run import Options
from loadtest.stepstats import window_start

START = 1_000_000.0


def samples_of(busy_share_per_second: list[tuple[float, float, float]]) -> list[dict]:
    """One sample a second on a 2-core machine; each second gives the machine's busy share and the cores
    that gunicorn and Locust used in it."""
    samples, busy, total, gunicorn, locust = [], 0.0, 0.0, 0.0, 0.0
    for second, (share, gunicorn_cores, locust_cores) in enumerate([(0.0, 0.0, 0.0), *busy_share_per_second]):
        busy, total = busy + 2 * share, total + 2
        gunicorn, locust = gunicorn + gunicorn_cores, locust + locust_cores
        samples.append(
            {
                "t": START + second,
                "machine": {"busy": busy, "total": total},
                "processes": {"1": ["gunicorn (HTTP)", gunicorn, 0], "2": ["locust (load generator)", locust, 0]},
            }
        )
    return samples


def test_a_saturated_burst_shows_through_a_quiet_step_average():
    # 60 s: 15 s of a question round at 100% (gunicorn 1.2 cores, Locust 0.8), the rest at 10%.
    seconds = [(1.0, 1.2, 0.8)] * 15 + [(0.1, 0.1, 0.1)] * 45
    samples = samples_of(seconds)
    burst = busiest_window(samples, START, START + 60)
    assert round(burst["machine_busy_pct"]) == 100
    assert burst["seconds"] == 10
    assert burst["saturated_seconds"] == 15
    assert round(burst["roles"]["gunicorn (HTTP)"]["cores"], 2) == 1.2

    step = {"resources": resources(samples, START, START + 60), "burst": burst}
    text = saturation(step)
    assert text.startswith("CPU: in the step's busiest 10 s the machine was 100% busy")
    assert "gunicorn (HTTP) 1.20" in text and "locust (load generator) 0.80" in text
    assert "90% busy or more for 15 of 60 s, 33% busy on average" in text


def test_a_steady_step_has_no_saturated_seconds():
    samples = samples_of([(0.3, 0.3, 0.2)] * 60)
    burst = busiest_window(samples, START, START + 60)
    assert round(burst["machine_busy_pct"]) == 30
    assert burst["saturated_seconds"] == 0
    peak = busiest_window(samples, START, START + 60, seconds=1)
    text = saturation({"resources": burst, "burst": burst, "peak_second": peak})
    assert text.startswith("nothing the sampler sees ran out: in the step's busiest 10 s the machine was 30% busy")
    assert "its busiest second 30% busy, the hottest process in it gunicorn (HTTP) at 0.30 of a core" in text


def test_a_step_shorter_than_the_window_has_no_busiest_window():
    assert busiest_window(samples_of([(1.0, 1.0, 1.0)] * 5), START, START + 5) == {}


def test_nginx_times_come_from_its_access_log_without_websockets_or_the_ceiling(tmp_path):
    # Lines as deploy/nginx/crowdtick.conf.template's crowdtick_masked format writes them, $msec last.
    log = tmp_path / "nginx-access.log"
    noon = datetime(2026, 11, 29, 12, tzinfo=UTC).timestamp()
    log.write_text(
        '127.0.0.1 - - [29/Nov/2026:12:00:00 +0000] "GET /p/abc/ HTTP/1.1" 200 5120 '
        f'"-" "locust" 0.012 {noon + 0.25:.3f}\n'
        '127.0.0.1 - - [29/Nov/2026:12:00:01 +0000] "POST /p/abc/vote/ HTTP/1.1" 200 900 '
        f'"http://127.0.0.1/p/abc/" "Phone 1.5 (a number in it)" 0.101 {noon + 1.875:.3f}\n'
        '127.0.0.1 - - [29/Nov/2026:12:00:01 +0000] "GET /ws/polls/abc/ HTTP/1.1" 101 300 '
        f'"-" "locust" 95.000 {noon + 1:.3f}\n'
        f'127.0.0.1 - - [29/Nov/2026:12:00:02 +0000] "GET /healthz HTTP/1.1" 200 2 "-" "wrk" 0.001 {noon + 2:.3f}\n'
        # A line of a run from before $msec was logged: the whole second is all there is.
        '127.0.0.1 - - [29/Nov/2026:12:00:03 +0000] "GET /p/abc/results/ HTTP/1.1" 200 800 "-" "locust" 0.004\n'
    )
    times = nginx_request_times(log)
    assert times == [(noon + 0.25, 12.0), (noon + 1.875, 101.0), (noon + 3, 4.0)]
    assert percentiles([ms for _, ms in times]) == {"p50": 12.0, "p95": 101.0, "p99": 101.0}
    assert nginx_request_times(tmp_path / "missing.log") == []


def test_a_step_window_starts_with_a_question_round():
    # Rounds of 60 s: a round that began under a second ago still counts (its burst starts 2 s in).
    assert window_start(1200.4, round_seconds=60, aligned=True) == 1200
    assert window_start(1201.5, round_seconds=60, aligned=True) == 1260
    assert window_start(1259.9, round_seconds=60, aligned=True) == 1260
    assert window_start(1201.5, round_seconds=30, aligned=True) == 1230
    assert window_start(1201.5, round_seconds=60, aligned=False) == 1201.5


# --- a whole report of both profiles, from synthetic run directories ---------------------------------


def figures(rps: float, p95: float, *, seconds: float = 60, failures: int = 0) -> dict:
    requests = int(rps * seconds)
    return {
        "requests": requests,
        "failures": failures,
        "rps": rps,
        "error_pct": 100 * failures / requests if requests else 0.0,
        "p50": p95 / 2,
        "p95": p95,
        "p99": p95 * 1.5,
        "mean": p95 / 2,
        "max": p95 * 2,
        "errors": {"HTTP 429": failures} if failures else {},
    }


def step_record(number: int, users: int, names: dict[str, float], p95: float) -> dict:
    """A step measured for 60 s, each of `names` at its requests a second."""
    start = START + 100 * number
    http = figures(sum(names.values()), p95)
    return {
        "step": number,
        "users": users,
        "users_running": users,
        "user_classes": {"Visitor": users},
        "started_at": start,
        "ended_at": start + 60,
        "seconds": 60,
        "http": http,
        "all": http,
        "names": {name: figures(rps, p95) for name, rps in names.items()},
    }


def cpu_samples(steps: list[dict], broadcaster_cores: float, celery_cores: float) -> list[dict]:
    """A sample a second over each step: gunicorn at 0.5 cores, the broadcaster and the worker as given."""
    samples, used = [], {"gunicorn (HTTP)": 0.0, "broadcaster": 0.0, "celery worker": 0.0}
    busy = total = 0.0
    cores = {"gunicorn (HTTP)": 0.5, "broadcaster": broadcaster_cores, "celery worker": celery_cores}
    for step in steps:
        for second in range(61):
            samples.append(
                {
                    "t": step["started_at"] + second,
                    "machine": {"busy": busy, "total": total},
                    "processes": {str(pid): [role, used[role], 2**20] for pid, role in enumerate(used)},
                }
            )
            busy, total = busy + sum(cores.values()), total + 2
            for role in used:
                used[role] += cores[role]
    return samples


def integrity_of(acknowledged: int) -> dict:
    return {
        "acknowledged": acknowledged,
        "acknowledged_by": {"api": acknowledged // 2, "form": acknowledged - acknowledged // 2},
        "acknowledged_twice": 0,
        "missing": 0,
        "repeated": 0,
        "ballots": acknowledged,
        "unacknowledged_ballots": 0,
        "polls": 40,
        "tally_mismatches": [],
        "tallies_settled_after_seconds": 0,
        "samples": {"acknowledged_twice": [], "missing": [], "repeated": []},
        "exact": True,
    }


HALL_EVENT = {"id": "ev", "code": "123456", "questions": 16, "shown": 12, "window_seconds": 20, "round_seconds": 60}


def write_profile(
    run_dir, options, steps: list[dict], *, broadcaster_cores: float, created: dict | None, event: dict | None = None
) -> None:
    run_dir.mkdir(parents=True)
    mix_start = START - 50
    meta = {
        "options": asdict(options),
        "started_at": START - 100,
        "ended_at": steps[-1]["ended_at"] + 30,
        "machine": {
            "cpu": "Test CPU",
            "cores": 2,
            "memory_gb": 4,
            "kernel": "6",
            "python": "3.12",
            "locust": "locust 2",
            "postgres": "16",
            "redis": "Redis 7",
            "nginx": "nginx/1",
        },  # fmt: skip
        "integrity": integrity_of(1234),
        "ceiling": {
            "rps": 5000.0,
            "failures": 0,
            "tool": "wrk",
            "seconds": 10,
            "started_at": START - 80,
            "ended_at": START - 70,
        },  # fmt: skip
        "mix_ceiling": {
            "users": 100,
            "mix": options.mix,
            "seconds": 20,
            "rps": 321.0,
            "http": figures(321, 40),
            "all": figures(321, 40, failures=3),
            "names": {},
            "started_at": mix_start,
            "ended_at": mix_start + 20,
        },  # fmt: skip
    }
    if created is not None:
        meta["created"] = created
    if event is not None:
        meta["event"] = event
    if options.profile == "hall":
        meta["ceilings_apart"] = True  # the hall's rate limits would refuse a closed loop
    (run_dir / "meta.json").write_text(json.dumps(meta, default=str))
    (run_dir / "steps.jsonl").write_text("".join(json.dumps(step) + "\n" for step in steps))
    samples = cpu_samples(steps, broadcaster_cores, 0.1)
    (run_dir / "samples.jsonl").write_text("".join(json.dumps(sample) + "\n" for sample in samples))


def test_the_report_shows_both_profiles_side_by_side_with_their_ceilings_and_cpu_shares(tmp_path):
    hall_steps = [step_record(1, 100, {"POST /p/[slug]/vote/": 2.0, "GET /p/[slug]/": 2.0}, 8.0)]
    public_names = {
        "POST /api/polls/": 5.0,
        "POST /polls/new/": 5.0,
        "POST /p/[slug]/vote/": 25.0,
        "POST /api/votes/": 25.0,
        "GET /p/[slug]/results/": 15.0,
        "GET /api/polls/[id]/results/": 15.0,
    }
    public_steps = [step_record(5, 100, public_names, 12.0), step_record(6, 500, public_names, 250.0)]
    write_profile(tmp_path / "run" / "hall", Options(), hall_steps, broadcaster_cores=0.05, created={"form": 2})
    write_profile(
        tmp_path / "run" / "public",
        Options.for_profile("public"),
        public_steps,
        broadcaster_cores=0.3,
        created={"api": 700, "form": 650},
    )

    text = write(tmp_path / "run", tmp_path / "out").read_text()

    side_by_side = text[text.index("## The profiles side by side") : text.index("## Ceilings")]
    assert "### Hall" in side_by_side and "### Public site" in side_by_side
    assert "| 100 | 4 | 4.0 | 8.0 | 12.0 | 0 | 0.00 | exact ✔ |" in side_by_side
    assert "| 500 | 90 | 125 | 250 | 375 | 0 | 0.00 | exact ✔ |" in side_by_side
    ceilings = text[text.index("## Ceilings") : text.index("## What ran")]
    assert "| Hall | 5,000 |" in ceilings and "| Public site | 5,000 |" in ceilings
    assert "| 321 | 100 | 20.0 | 40.0 | 60.0 | 3 | 0.02 |" in ceilings
    assert (
        "mix `visitor=1` for 20 s, on the stack the steps then ran on, rate limits off; errors seen: 3 × HTTP 429"
        in ceilings
    )
    assert "for 20 s, on a stack started without rate limits just before the one the steps ran on" in ceilings
    # The public site runs without rate limits, and says so; the hall keeps them.
    assert "**Rate limits (public site)**: **off** (`RATELIMIT_ENABLE=0`)" in text
    hall_limits = "on, with these settings changed for this run: `RATELIMIT_POLLS_PER_ADDRESS_PER_DAY=1000000`"
    assert f"**Rate limits (hall)**: {hall_limits}" in text
    # The public site's actions per step, and the polls it made.
    assert "| 10.0 | 25.0 / 25.0 | 15.0 / 15.0 |" in text
    assert "1,350 polls created during the run on top of 300 seeded" in text
    # Each profile's CPU table names the broadcaster's and the Celery worker's share per step.
    public_cpu = text[text.index("## Public site: CPU and memory per process") :]
    assert "| broadcaster | 0.30 (33%) | 0.30 (33%) |" in public_cpu
    assert "| celery worker | 0.10 (11%) | 0.10 (11%) |" in public_cpu
    hall_cpu = text[text.index("## Hall: CPU and memory per process") : text.index("## Hall: integrity")]
    assert "| broadcaster | 0.05 (8%) |" in hall_cpu
    # The hall keeps its charts; the public site gets its own, without push latency (it has no screens).
    assert "![Latency percentiles vs users](latency.png)" in text
    assert "![Public site: Latency percentiles vs users](public-latency.png)" in text
    assert not (tmp_path / "out" / "push_latency.png").exists()  # no pushes in these synthetic steps
    assert (tmp_path / "out" / "public-latency.png").exists()


def test_a_run_directory_of_one_profile_is_reported_alone(tmp_path):
    steps = [step_record(1, 200, {"GET /p/[slug]/": 2.0}, 8.0)]
    write_profile(tmp_path / "run", Options(), steps, broadcaster_cores=0.05, created=None)
    assert list(runs_in(tmp_path / "run")) == ["hall"]
    text = write(tmp_path / "run", tmp_path / "out").read_text()
    assert "## Hall: per step" in text and "Public site" not in text


def test_the_hall_report_says_what_its_event_did_and_times_each_question_opened_to_the_phones(tmp_path):
    names = {"POST /e/[code]/vote/": 2.0, "POST /api/events/[id]/control/ (open)": 1 / 60, PUSH: 1.5}
    steps = [step_record(1, 100, names, 8.0), step_record(2, 500, names, 9.0)]
    write_profile(tmp_path / "run", Options(), steps, broadcaster_cores=0.05, created={"api": 2}, event=HALL_EVENT)

    text = write(tmp_path / "run", tmp_path / "out").read_text()

    assert (
        "One event of 16 questions, created through `POST /api/events/`; its presenter put 12 of them on screen, "
        "opening each for 20 s." in text
    )
    assert "then `open` with a 20 s window, and `reveal` once the window is over" in text
    assert "on top of the event's 16 questions." in text
    # Push latency per step (p50, p95, p99 and how many were timed), and its chart.
    assert "| 100 | 4 | 4.0 | 8.0 | 12.0 | 0 | 0.00 | 4.0 | 8.0 | 12.0 | 90 |" in text
    assert "![Push latency vs users](push_latency.png)" in text
    assert (tmp_path / "out" / "push_latency.png").exists()


def test_a_hall_run_from_before_events_is_still_reported_as_it_ran(tmp_path):
    names = {"POST /p/[slug]/vote/": 2.0, PUSH_BEFORE_EVENTS: 1.5}
    steps = [step_record(1, 100, names, 8.0)]
    write_profile(tmp_path / "run", replace(Options(), polls=10), steps, broadcaster_cores=0.05, created={"api": 2})

    text = write(tmp_path / "run", tmp_path / "out").read_text()

    assert "10 polls seeded through the landing page's form." in text
    assert "*Viewer*: a live screen; loads the results page" in text
    assert "| 100 | 4 | 4.0 | 8.0 | 12.0 | 0 | 0.00 | 4.0 | 8.0 | 12.0 | 90 |" in text
