#!/usr/bin/env python3
"""Persistent connections or psycopg's pool: votes per second through the vote service.

    python bench/db_modes.py [--threads 8] [--seconds 8] [--rounds 3]

Each round runs every mode in its own process (settings are read from the environment at
start-up) with the same threads casting votes as gunicorn's gthread workers would: every vote
is wrapped in Django's request_started / request_finished signals, so connections are checked,
kept or returned to the pool exactly as in a request. Modes alternate so a busy minute on the
shared machine hurts them alike; medians are printed. Needs DATABASE_URL and REDIS_URL.
"""

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = {
    "persistent + health checks (CONN_MAX_AGE=600)": {"DB_POOL": "0"},
    "psycopg pool (OPTIONS pool, CONN_MAX_AGE=0)": {"DB_POOL": "1"},
}


def measure_in_this_process(threads: int, seconds: float) -> float:
    import django

    django.setup()
    from django.core.signals import request_finished, request_started

    from polls import selectors, services

    poll, _token = services.poll_create(question="Connection modes?", choices=["A", "B"])
    choice_id = poll.choices.first().id
    run = secrets.token_hex(4)
    stop = threading.Event()
    counts = [0] * threads

    def cast(thread: int) -> None:
        while not stop.is_set():
            request_started.send(sender=None)
            try:
                services.vote_cast(
                    poll=selectors.poll_get(slug=poll.slug),
                    choice_ids=[choice_id],
                    voter_key=f"{run}-{thread}-{counts[thread]}",
                    ip_address=None,
                )
            finally:
                request_finished.send(sender=None)
            counts[thread] += 1

    workers = [threading.Thread(target=cast, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    return sum(counts) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_in_this_process(args.threads, args.seconds)))
        return
    if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        sys.exit("db_modes: set DATABASE_URL and REDIS_URL")
    results: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(args.rounds):
        for mode, env in MODES.items():
            child = [sys.executable, __file__, "--child", "--threads", str(args.threads)]
            child += ["--seconds", str(args.seconds)]
            environment = os.environ | env | {"DJANGO_SETTINGS_MODULE": "crowdtick.settings", "PYTHONPATH": str(ROOT)}
            output = subprocess.run(child, env=environment, capture_output=True, text=True, check=True).stdout
            results[mode].append(json.loads(output.strip().splitlines()[-1]))
            print(f"{mode}: {results[mode][-1]:,.0f} votes/s", flush=True)
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f}")
    for mode, rates in results.items():
        print(f"| {mode} | {statistics.median(rates):,.0f} | {' / '.join(f'{r:,.0f}' for r in rates)} |")


if __name__ == "__main__":
    main()
