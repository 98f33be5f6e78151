#!/usr/bin/env python3
"""`make loadtest`: the production stack under stepped Locust load, an integrity check, the report.

1. starts the stack through scripts/stack (what `make stack` runs), on free ports;
2. seeds the event's polls through the site's own form;
3. measures the stack's /healthz ceiling (wrk, or Locust without it) in the same run;
4. steps the users (Locust: a master and 2 worker processes, FastHttpUser), recording per step
   requests/s, latency percentiles per endpoint, errors and push latency, while a sampler reads
   CPU and memory of every process of the stack, PostgreSQL's backends, Redis and Locust;
5. checks every acknowledged vote is in PostgreSQL exactly once and the tallies equal the record;
6. writes docs/loadtest/REPORT.md and its charts (loadtest/report.py).

Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/crowdtick_loadtest, created
if missing) and REDIS_URL (default redis://127.0.0.1:6379/1). Rate limits stay at their
production defaults unless --stack-env changes one, which the report then lists.
"""

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import psutil  # noqa: E402
import psycopg  # noqa: E402

from crowdtick.database import ensure_database  # noqa: E402
from loadtest import integrity, report  # noqa: E402
from loadtest.sampler import Sampler  # noqa: E402
from loadtest.site import Site, seed_polls  # noqa: E402
from loadtest.stack import ROOT, Stack, free_ports  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/crowdtick_loadtest"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/1"  # not make stack's 0: another database's tallies
LOCUST = Path(sys.executable).parent / "locust"


@dataclass
class Options:
    steps: list[int] = field(default_factory=lambda: [100, 250, 500, 1000, 2000, 4000])
    step_seconds: float = 60
    settle_seconds: float = 10
    spawn_rate: float = 100
    mix: str = "voter=70,api=10,viewer=19,creator=1"
    wait_scale: float = 1.0
    round_seconds: float = 60
    align_to_rounds: bool = True  # each measured window starts with a question round (stepstats.window_start)
    polls: int = 10
    ceiling_seconds: float = 10
    locust_processes: int = 2
    sample_seconds: float = 1.0
    sample_uss: bool = False
    port_base: int | None = None
    stack_env: dict[str, str] = field(default_factory=dict)
    run_dir: Path | None = None
    out_dir: Path = ROOT / "docs" / "loadtest"
    label: str = ""
    command: str = "make loadtest"


def parse_args(argv: list[str] | None = None) -> Options:
    defaults = Options()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default=",".join(map(str, defaults.steps)), help="users per step")
    parser.add_argument("--step-seconds", type=float, default=defaults.step_seconds, help="measured seconds a step")
    parser.add_argument("--settle-seconds", type=float, default=defaults.settle_seconds)
    parser.add_argument("--spawn-rate", type=float, default=defaults.spawn_rate, help="users started a second")
    parser.add_argument("--mix", default=defaults.mix, help="user weights: voter, api, viewer, creator")
    parser.add_argument("--wait-scale", type=float, default=defaults.wait_scale, help="multiplies think times")
    parser.add_argument("--round-seconds", type=float, default=defaults.round_seconds, help="a question every …")
    parser.add_argument(
        "--no-align-to-rounds", dest="align_to_rounds", action="store_false", help="measure from any moment of a round"
    )
    parser.add_argument("--polls", type=int, default=defaults.polls, help="polls seeded before the load")
    parser.add_argument("--ceiling-seconds", type=float, default=defaults.ceiling_seconds, help="0 skips it")
    parser.add_argument("--locust-processes", type=int, default=defaults.locust_processes)
    parser.add_argument("--port-base", type=int, help="nginx on it, gunicorn +1 +2, ASGI +3 +4, Locust +5")
    parser.add_argument("--stack-env", action="append", default=[], metavar="NAME=VALUE", help="a setting changed")
    parser.add_argument("--run-dir", type=Path, help="raw data of the run (default: a new temporary one)")
    parser.add_argument("--out-dir", type=Path, default=defaults.out_dir, help="where REPORT.md and charts go")
    parser.add_argument("--label", default="", help="a line saying what this run is, at the top of the report")
    args = parser.parse_args(argv)
    stack_env = dict(item.split("=", 1) for item in args.stack_env)
    # The command as the report shows it: where the raw data went and the label change no figure.
    shown = without_options(argv or [], {"--run-dir", "--label"})
    command = "make loadtest" + (f" LOADTEST_ARGS={shlex.quote(shlex.join(shown))}" if shown else "")
    return Options(
        steps=[int(n) for n in args.steps.split(",")],
        step_seconds=args.step_seconds,
        settle_seconds=args.settle_seconds,
        spawn_rate=args.spawn_rate,
        mix=args.mix,
        wait_scale=args.wait_scale,
        round_seconds=args.round_seconds,
        align_to_rounds=args.align_to_rounds,
        polls=args.polls,
        ceiling_seconds=args.ceiling_seconds,
        locust_processes=args.locust_processes,
        port_base=args.port_base,
        stack_env=stack_env,
        run_dir=args.run_dir,
        out_dir=args.out_dir,
        label=args.label,
        command=command,
    )


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
    """Runs the whole load test; returns the run directory (meta.json, steps.jsonl, integrity.json, ...)."""
    run_dir = options.run_dir or Path(f"/tmp/crowdtick-loadtest-{os.getuid()}") / time.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    database_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    ensure_database(database_url)
    ports = list(range(options.port_base, options.port_base + 6)) if options.port_base else free_ports(6)
    meta = {
        "options": {**asdict(options), "run_dir": str(run_dir), "out_dir": str(options.out_dir)},
        "started_at": time.time(),
        "machine": machine(database_url),
        "database_url": database_url,
        "redis_url": redis_url,
    }
    print(f"loadtest: run directory {run_dir}", flush=True)
    stack = Stack(
        run_dir=run_dir / "stack",
        database_url=database_url,
        redis_url=redis_url,
        ports=ports[:5],
        extra_env=options.stack_env,
    )
    with stack:
        site = Site(stack.base_url)
        polls = seed_polls(site, options.polls)
        (run_dir / "polls.json").write_text(json.dumps(polls))
        print(f"loadtest: stack up at {stack.base_url}, {len(polls)} polls seeded", flush=True)
        sampler = Sampler(
            out=run_dir / "samples.jsonl",
            database_url=database_url,
            interval=options.sample_seconds,
            uss=options.sample_uss,
        )
        sampler.watch(stack.process.pid)
        sampler.start()
        try:
            if options.ceiling_seconds:
                meta["ceiling"] = measure_ceiling(stack.base_url, options, run_dir, sampler)
                print(f"loadtest: /healthz ceiling {meta['ceiling']['rps']:,.0f} req/s", flush=True)
            meta["locust"] = run_locust(stack.base_url, options, run_dir, sampler, master_port=ports[5])
        finally:
            sampler.stop()
        print("loadtest: checking integrity", flush=True)
        meta["integrity"] = integrity.check(
            database_url=database_url, site=site, run_dir=run_dir, seeded_slugs=[poll["slug"] for poll in polls]
        )
    meta["ended_at"] = time.time()
    (run_dir / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
    return run_dir


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


def run_locust(base_url: str, options: Options, run_dir: Path, sampler: Sampler, *, master_port: int) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LOADTEST_OUT": str(run_dir),
        "LOADTEST_RUN_ID": uuid.uuid4().hex[:8],
        "LOADTEST_MIX": options.mix,
        "LOADTEST_STEPS": ",".join(map(str, options.steps)),
        "LOADTEST_STEP_SECONDS": str(options.step_seconds),
        "LOADTEST_SETTLE_SECONDS": str(options.settle_seconds),
        "LOADTEST_SPAWN_RATE": str(options.spawn_rate),
        "LOADTEST_WAIT_SCALE": str(options.wait_scale),
        "LOADTEST_ROUND_SECONDS": str(options.round_seconds),
        "LOADTEST_ALIGN_TO_ROUNDS": "1" if options.align_to_rounds else "0",
    }
    command = [
        str(LOCUST), "-f", str(ROOT / "loadtest" / "locustfile.py"), "--headless", "--host", base_url,
        "--processes", str(options.locust_processes), "--master-bind-port", str(master_port),
        "--master-port", str(master_port), "--only-summary", "--stop-timeout", "5",
    ]  # fmt: skip
    started = time.time()
    with (run_dir / "locust.log").open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT)
        sampler.watch(process.pid)
        echo = threading.Thread(target=_echo_progress, args=(process.stdout, log), daemon=True)
        echo.start()
        try:
            returncode = process.wait()
        except BaseException:
            process.terminate()
            process.wait(timeout=30)
            raise
        echo.join(timeout=5)
    if not (run_dir / "steps.jsonl").exists():
        log_tail = "\n".join((run_dir / "locust.log").read_text().splitlines()[-20:])
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
    options = parse_args(sys.argv[1:])
    run_dir = run(options)
    written = report.write(run_dir, options.out_dir)
    print(f"loadtest: wrote {written}", flush=True)
    print(report.verdict_line(run_dir), flush=True)


if __name__ == "__main__":
    main()
