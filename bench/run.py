#!/usr/bin/env python3
"""`make bench`: starts the stack, measures /healthz, the votes and the results with wrk.

Every endpoint is measured 3 times (runs interleaved, so a slow minute on the shared machine
hurts all endpoints alike) at 100 connections; the medians and their ratios to /healthz go to
the "## HTTP benchmarks (make bench)" section of docs/benchmarks.md, leaving other sections.

Options: --db-modes persistent,pool measures each database connection mode in its own stack
(DB_POOL=0/1) and adds a comparison table; --duration and --runs shorten a trial run.

Rate limits are off in the benchmark stack (RATELIMIT_ENABLE=0): every request comes from
127.0.0.1, which the per-address limit would rightly throttle.
"""

import argparse
import http.client
import json
import os
import re
import runpy
import secrets
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from loadtest.programs import programs_require  # noqa: E402
from loadtest.site import Site, SiteError  # noqa: E402
from loadtest.stack import Stack, StackError, free_ports  # noqa: E402

BENCH = ROOT / "bench"
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## HTTP benchmarks (make bench)"
HOST, PORT = "127.0.0.1", int(os.environ.get("CT_HTTP_PORT", "8080"))
CONNECTIONS, THREADS = 100, 2
# Targets from the issue: requests/s as a share of /healthz's, measured in the same run.
TARGETS = {"vote_json": 0.25, "vote_form": 0.20, "results": 0.50}


@dataclass
class Endpoint:
    name: str
    label: str
    url: str
    script: str | None = None
    env: dict | None = None


@dataclass
class Sample:
    requests_per_second: float
    p99_ms: float
    requests: int
    failures: int  # non-2xx/3xx answers plus socket errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-modes", default="persistent", help="comma-separated: persistent, pool")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing docs/")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the stack is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench: stopped"))
    programs_require("nginx", "wrk")

    env = stack_env()
    load_before = os.getloadavg()[0]
    results: dict[str, tuple[list[Endpoint], dict[str, list[Sample]], dict]] = {}
    for mode in args.db_modes.split(","):
        mode_env = env | {"DB_POOL": "1" if mode == "pool" else "0"}
        stack = Stack(
            run_dir=Path(mode_env["CT_RUN_DIR"]),
            database_url=mode_env["DATABASE_URL"],
            redis_url=mode_env["REDIS_URL"],
            ports=[PORT, *free_ports(4)],
            extra_env=mode_env,
        )
        try:
            with stack:  # started here, stopped on the way out
                endpoints = prepare_endpoints()
                samples = measure(endpoints, runs=args.runs, duration=args.duration)
                checks = record_check(mode_env["DATABASE_URL"], endpoints, samples)
        except StackError as error:
            sys.exit(f"bench: {error}")
        results[mode] = (endpoints, samples, checks)

    load = (load_before, os.getloadavg()[0])
    section = render(results, duration=args.duration, load=load)
    if args.no_write:
        print(section)
    else:
        write_section(section)
        print(section)
        print(f"bench: wrote {DOC.relative_to(ROOT)}")


def stack_env() -> dict:
    env = dict(os.environ)
    env.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/crowdtick")
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    env["RATELIMIT_ENABLE"] = "0"
    env.setdefault("CT_RUN_DIR", f"/tmp/crowdtick-bench-{os.getuid()}")
    return env


def request(method: str, path: str, body: str | None = None, headers: dict | None = None):
    connection = http.client.HTTPConnection(HOST, PORT, timeout=10)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read().decode()
    connection.close()
    return response.status, response.headers, data


def get(path: str):
    return request("GET", path)


def prepare_endpoints() -> list[Endpoint]:
    """Creates one poll per vote endpoint (through the site, like a user) and lists what to measure."""
    base = f"http://{HOST}:{PORT}"
    csrf = secrets.token_hex(16)  # Django accepts any well-formed secret as long as cookie and field agree
    api = request("POST", "/api/votes/", "{}", {"Content-Type": "application/json"})[0] != 404
    form_slug, form_choice = create_poll()
    endpoints = [
        Endpoint("healthz", "`GET /healthz`", f"{base}/healthz"),
        Endpoint(
            "vote_form",
            "HTML form vote (`POST /p/<slug>/vote/`, HTMX, CSRF, new voter each)",
            f"{base}/p/{form_slug}/vote/",
            "vote_form.lua",
            {"CT_CSRF": csrf, "CT_CHOICE": form_choice},
        ),
    ]
    if api:
        json_slug, json_choice = create_poll()
        endpoints.insert(
            1,
            Endpoint(
                "vote_json",
                "JSON vote (`POST /api/votes/`, new voter each)",
                f"{base}/api/votes/",
                "vote_json.lua",
                {"CT_POLL": json_slug, "CT_CHOICE": json_choice, "CT_RUN": secrets.token_hex(4)},
            ),
        )
        endpoints.append(
            Endpoint("results", "results (`GET /api/polls/<id>/results/`)", f"{base}/api/polls/{form_slug}/results/")
        )
    else:
        endpoints.append(
            Endpoint("results", "results page (`GET /p/<slug>/results/`)", f"{base}/p/{form_slug}/results/")
        )
    return endpoints


def create_poll() -> tuple[str, str]:
    """A poll created through the landing page's form; its slug and its first choice's id."""
    try:
        site = Site(f"http://{HOST}:{PORT}")
        poll = site.create_poll(question="Benchmark: which one?", choices=["Red", "Green", "Blue"])
    except SiteError as error:
        sys.exit(f"bench: {error}")
    return poll["slug"], str(poll["choice_ids"][0])


def gunicorn_shape() -> str:
    """Workers × threads per instance, as deploy/gunicorn.conf.py sets them in this environment."""
    config = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    workers = config["workers"]
    return f"{workers} worker{'s' if workers != 1 else ''} × {config['threads']} threads"


def wrk(endpoint: Endpoint, duration: int) -> Sample:
    command = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency", "--timeout", "5s"]
    if endpoint.script:
        command += ["-s", str(BENCH / endpoint.script)]
    env = os.environ | (endpoint.env or {})
    if "CT_RUN" in env:  # wrk's counters restart at every run: a fresh prefix keeps every voter new
        env["CT_RUN"] = secrets.token_hex(6)
    output = subprocess.run([*command, endpoint.url], env=env, capture_output=True, text=True, check=True).stdout
    return parse_wrk(output)


def parse_wrk(output: str) -> Sample:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p99_value, p99_unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", output).groups()
    p99_ms = float(p99_value) * {"us": 0.001, "ms": 1, "s": 1000}[p99_unit]
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    failures = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    failures += sum(int(n) for n in socket.groups()) if socket else 0
    return Sample(requests_per_second=rps, p99_ms=p99_ms, requests=requests, failures=failures)


def measure(endpoints: list[Endpoint], *, runs: int, duration: int) -> dict[str, list[Sample]]:
    for endpoint in endpoints:  # warm caches, connection pools and the JIT-free interpreters alike
        wrk(endpoint, 2)
    samples: dict[str, list[Sample]] = {endpoint.name: [] for endpoint in endpoints}
    for run in range(runs):
        for endpoint in endpoints:
            sample = wrk(endpoint, duration)
            samples[endpoint.name].append(sample)
            print(
                f"bench: run {run + 1} {endpoint.name}: {sample.requests_per_second:,.0f} req/s, "
                f"p99 {sample.p99_ms:.1f} ms, {sample.failures} failures",
                flush=True,
            )
    return samples


def record_check(database_url: str, endpoints: list[Endpoint], samples: dict[str, list[Sample]]) -> dict:
    """Every vote answered 2xx must be a ballot in PostgreSQL, and the cached tally must agree."""
    checks = {}
    time.sleep(1)
    for endpoint in endpoints:
        if not endpoint.name.startswith("vote"):
            continue
        slug = endpoint.url.rstrip("/").split("/")[-2] if endpoint.name == "vote_form" else endpoint.env["CT_POLL"]
        with psycopg.connect(database_url) as connection:
            ballots = connection.execute(
                "SELECT count(*) FROM polls_ballot b JOIN polls_poll p ON p.id = b.poll_id WHERE p.slug = %s", [slug]
            ).fetchone()[0]
        # A tally may be off for up to one reconcile period (10 s) after a cache-miss race.
        deadline = time.monotonic() + 15
        while True:
            status, _, body = get(f"/api/polls/{slug}/results/")
            if status != 200 or json.loads(body)["total"] == ballots or time.monotonic() > deadline:
                break
            time.sleep(1)
        checks[endpoint.name] = {
            "ballots": ballots,
            # Warm-up requests count too: they were real votes.
            "answered_2xx_measured": sum(s.requests - s.failures for s in samples[endpoint.name]),
            "tally_total": json.loads(body)["total"] if status == 200 else None,
        }
    return checks


def render(results: dict, *, duration: int, load: tuple[float, float]) -> str:
    chosen_mode = next(iter(results))
    endpoints, samples, checks = results[chosen_mode]
    healthz = statistics.median(s.requests_per_second for s in samples["healthz"])
    lines = [
        SECTION,
        "",
        f"Written by `make bench` (bench/run.py) on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: the whole",
        f"stack of `make stack` (nginx :8080, 2 gunicorn gthread instances of {gunicorn_shape()}, 2 uvicorn,",
        "Celery worker and beat, the broadcaster when present), PostgreSQL and Redis, all on this 2-core machine",
        f"together with the load generator. wrk, {THREADS} threads, {CONNECTIONS} connections, {duration} s per run,",
        "3 runs per endpoint interleaved, medians. Database connections: "
        + ("psycopg pool (`DB_POOL=1`)." if chosen_mode == "pool" else "persistent (`CONN_MAX_AGE=600`)."),
        "Every vote is a new voter (the HTML form carries no voter cookie, so the site mints one; the JSON vote",
        "sends a unique `voter`), so every request writes a ballot. Rate limits are off (`RATELIMIT_ENABLE=0`):",
        "all the load comes from one address.",
        f"Load average of the machine (1 min) before and after: {load[0]:.1f} / {load[1]:.1f}: other work",
        "shares these 2 cores, so absolute figures move between runs; the ratios are taken within one run.",
        "",
        "| endpoint | req/s (median) | runs | p99 ms (median) | vs /healthz | target | failures |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for endpoint in endpoints:
        rps = [s.requests_per_second for s in samples[endpoint.name]]
        ratio = statistics.median(rps) / healthz
        target = TARGETS.get(endpoint.name)
        verdict = "" if target is None else f"≥ {target:.0%} {'✔' if ratio >= target else '✘'}"
        lines.append(
            f"| {endpoint.label} | {statistics.median(rps):,.0f} | {' / '.join(f'{r:,.0f}' for r in rps)} "
            f"| {statistics.median(s.p99_ms for s in samples[endpoint.name]):.1f} | {ratio:.0%} | {verdict} "
            f"| {sum(s.failures for s in samples[endpoint.name])} |"
        )
    lines += ["", "Record check after the runs (ballots in PostgreSQL vs the total of the cached tally):", ""]
    for name, check in checks.items():
        lines.append(
            f"- {name}: {check['ballots']:,} ballots in PostgreSQL, tally total {check['tally_total']}, "
            f"{check['answered_2xx_measured']:,} votes answered 2xx in the measured runs (plus warm-up)."
        )
    if len(results) > 1:
        lines += [
            "",
            "Database connection modes, same runs (req/s medians):",
            "",
            "| mode | " + " | ".join(e.name for e in endpoints) + " |",
            "| --- | " + " | ".join("---:" for _ in endpoints) + " |",
        ]
        for mode, (_, mode_samples, _) in results.items():
            cells = [
                f"{statistics.median(s.requests_per_second for s in mode_samples[e.name]):,.0f}" for e in endpoints
            ]
            lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    notes = BENCH / "notes.md"  # the reading of these figures, kept by hand
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    return "\n".join(lines) + "\n"


def write_section(section: str, *, heading: str = SECTION) -> None:
    """Replaces the section under `heading` in docs/benchmarks.md (or appends it), keeping every other section."""
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text.rstrip("\n") + "\n")


if __name__ == "__main__":
    main()
