"""`make chaos`: starts a private stack, runs each fault scenario under concurrent votes, checks every
vote and writes the table to docs/reliability.md. Exit status 1 when a criterion fails.

    python chaos/run.py [--scenarios worker,redis,postgres,gunicorn,asgi,void] [--attempts 10000]
                        [--viewers 1000] [--pause-seconds 30] [--out docs/reliability.md]
"""

import argparse
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

from chaos import checker, report  # noqa: E402
from chaos.clients import Voters, write_history  # noqa: E402
from chaos.services import PostgreSQL, Redis  # noqa: E402
from chaos.stack import ROOT, VENV_BIN, ChaosStack  # noqa: E402
from loadtest import integrity  # noqa: E402
from loadtest.site import Site, SiteError  # noqa: E402

SCENARIOS = ["worker", "redis", "postgres", "gunicorn", "asgi", "void"]
PORT_RANGE = range(56000, 56100)
PORT_NAMES = ["postgres", "redis", "http", "web1", "web2", "ws1", "ws2"]
VOTE_SECONDS = 60
DOWN_SECONDS = 5  # how long a killed process stays down before it is started again
CLIENTS = 80
POLLS = 4
VOIDED = re.compile(r"[?&]voided=(\d+)")
# The void scenario: a script stuffs this many ballots into the first poll from one network (a voter
# key of its own each time) in a few seconds; its owner voids the burst while everyone keeps voting.
STUFFED_BALLOTS = 300
STUFFER_THREADS = 8
STUFFER_ADDRESS = "198.51.100.66"


def free_ports(names: list[str]) -> dict[str, int]:
    """Ports of PORT_RANGE free now. The range lies in the kernel's ephemeral range, where other
    programs' outgoing sockets come and go, so fixed numbers were sometimes taken."""
    ports = []
    for port in PORT_RANGE:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == len(names):
            return dict(zip(names, ports, strict=True))
    raise RuntimeError(f"fewer than {len(names)} free ports in {PORT_RANGE.start}–{PORT_RANGE.stop - 1}")


class Run:
    def __init__(self, args) -> None:
        self.args = args
        self.run_dir = Path(tempfile.mkdtemp(prefix="crowdtick-chaos-", dir="/tmp"))
        self.run_dir.chmod(0o755)  # PostgreSQL runs as its own user and needs to reach its data directory
        self.ports = free_ports(PORT_NAMES)
        self.postgres = PostgreSQL(self.run_dir, self.ports["postgres"])
        self.redis = Redis(self.run_dir, self.ports["redis"])
        self.stack: ChaosStack | None = None

    def start(self) -> None:
        print(f"chaos: run directory {self.run_dir}", flush=True)
        self.postgres.initdb()
        self.postgres.start()
        self.redis.start()
        self.stack = ChaosStack(
            run_dir=self.run_dir, database_url=self.postgres.url, redis_url=self.redis.url, ports=self.ports
        )
        self.stack.prepare()
        self.stack.start()
        self.site = Site(self.stack.base_url)
        print(f"chaos: stack ready at {self.stack.base_url}", flush=True)

    def stop(self) -> None:
        if self.stack:
            self.stack.stop()
        self.redis.stop()
        self.postgres.stop()

    # --- one scenario ---------------------------------------------------------------------
    def scenario(self, name: str) -> dict:
        directory = self.run_dir / f"scenario-{name}"
        directory.mkdir()
        polls = [
            self.site.create_poll(question=f"Chaos {name} {n}: which one?", choices=["Red", "Green", "Blue", "Yellow"])
            for n in range(1, POLLS + 1)
        ]
        slugs = [poll["slug"] for poll in polls]
        self._polls = polls
        viewers = self._start_viewers(polls[0]["slug"], directory) if name == "asgi" else None
        down = self.args.pause_seconds if name == "postgres" else DOWN_SECONDS
        fault_at = VOTE_SECONDS / 2 - down / 2
        voters = Voters(self.stack.base_url, polls, attempts=self.args.attempts, seconds=VOTE_SECONDS, clients=CLIENTS)
        t0, t0_wall = time.monotonic(), time.time()
        voters.start(t0)
        monitor = TallyMonitor(self.postgres.url, self.site, slugs, t0)
        monitor.start()
        time.sleep(max(0.0, t0 + fault_at - time.monotonic()))
        print(f"chaos: {name}: fault at {time.monotonic() - t0:.1f} s", flush=True)
        fault = self._inject(name, down, t0)
        print(f"chaos: {name}: recovered at {fault['recovered_at']:.1f} s; votes continue", flush=True)
        voters.join()
        monitor.votes_done(recovered_at=fault["recovered_at"])
        history = [asdict(attempt) for attempt in voters.history]
        write_history(directory / "history.jsonl", voters.history)
        viewer_result = None
        if viewers:
            stop_at = t0 + fault["fault_at"] + checker.VIEWER_DEADLINE_SECONDS
            time.sleep(max(0.0, stop_at - time.monotonic()))
            viewer_result = self._stop_viewers(viewers, directory, t0_wall, fault["fault_at"], polls[0]["slug"])
        monitor.join()
        with (directory / "acks-chaos.tsv").open("w") as acks:
            for attempt in history:
                if attempt["outcome"] == "acknowledged":
                    acks.write(f"{attempt['poll']}\t{attempt['voter']}\t{attempt['via']}\n")
        checked = integrity.check(
            database_url=self.postgres.url, site=self.site, run_dir=directory, seeded_slugs=slugs, settle_seconds=30
        )
        pause = (fault["fault_at"], fault["recovered_at"]) if name == "postgres" else None
        result = {
            "scenario": name,
            "fault": fault,
            "seconds": round(time.monotonic() - t0, 1),
            "history": checker.history_summary(history, pause=pause),
            "integrity": checked,
            "tallies_settled_after": checker.tallies_settled_after(monitor.samples, recovered_at=fault["recovered_at"]),
            "viewers": viewer_result,
        }
        result["verdicts"] = checker.verdicts(result)
        (directory / "result.json").write_text(json.dumps(result, indent=2, default=str))
        print(f"chaos: {name}: {report.one_line(result)}", flush=True)
        return result

    def _inject(self, name: str, down: float, t0: float) -> dict:
        started = time.monotonic() - t0
        if name == "postgres":
            self.postgres.signal(signal.SIGSTOP)
            time.sleep(down)
            self.postgres.signal(signal.SIGCONT)
            return {"fault_at": started, "recovered_at": time.monotonic() - t0, "what": "SIGSTOP PostgreSQL"}
        if name == "void":
            return self._void_a_burst(started, t0)
        if name == "redis":
            self.redis.kill()
            time.sleep(down)
            self.redis.start()
            return {"fault_at": started, "recovered_at": time.monotonic() - t0, "what": "kill -9 redis-server"}
        process = self.stack.processes[{"worker": "worker", "gunicorn": "web1", "asgi": "ws1"}[name]]
        process.kill()
        time.sleep(down)
        process.start()
        if name == "worker":
            recovered = time.monotonic()
        else:
            recovered = self.stack.wait_listening(process.name)
        return {"fault_at": started, "recovered_at": recovered - t0, "what": f"kill -9 {process.name} (its group)"}

    def _void_a_burst(self, started: float, t0: float) -> dict:
        """A script stuffs the first poll from one network; once half its ballots are in, the owner
        voids that network's minute through the owner page's form, while the script, and everyone
        else, keeps voting. Its ballots are not acknowledged votes of the run: integrity checks only
        that the tallies equal the ballots that count."""
        poll = self._polls[0]
        sent = threading.Semaphore(0)
        stuffers = [
            threading.Thread(target=self._stuff, args=(poll, STUFFED_BALLOTS // STUFFER_THREADS, sent), daemon=True)
            for _ in range(STUFFER_THREADS)
        ]
        for stuffer in stuffers:
            stuffer.start()
        for _ in range(STUFFED_BALLOTS // 2):
            sent.acquire()
        with psycopg.connect(self.postgres.url) as connection:
            burst = connection.execute(
                """SELECT b.ip_hash, floor(extract(epoch FROM b.submitted_at) / 60)::bigint AS minute
                   FROM polls_ballot b JOIN polls_poll p ON p.id = b.poll_id
                   WHERE p.slug = %s AND b.voter_key LIKE 'stuffer-%%'
                   GROUP BY 1, 2 ORDER BY count(*) DESC LIMIT 1""",
                [poll["slug"]],
            ).fetchone()
        network, minute = burst or ("0" * 64, 0)  # no stuffed ballot went in: the void finds none
        answer = self.site.post_form(poll["manage_path"] + "void/", [("network", network), ("minute", str(minute))])
        voided = int(VOIDED.search(answer.headers.get("Location", "")).group(1)) if answer.status == 302 else 0
        recovered = time.monotonic() - t0
        for stuffer in stuffers:
            stuffer.join()
        what = f"{STUFFED_BALLOTS} ballots stuffed from one network, {voided} voided (owner's POST: {answer.status})"
        return {"fault_at": started, "recovered_at": recovered, "what": what, "voided": voided}

    def _stuff(self, poll: dict, ballots: int, sent: threading.Semaphore) -> None:
        """API votes, each under a new voter key, straight to a web instance with a forwarded address of
        another network (nginx would overwrite it: behind it every client of the run is 127.0.0.1)."""
        host, port = "127.0.0.1", self.ports["web1"]
        for _ in range(ballots):
            body = json.dumps(
                {"poll": poll["slug"], "choices": [poll["choice_ids"][0]], "voter": f"stuffer-{uuid.uuid4().hex}"}
            )
            connection = http.client.HTTPConnection(host, port, timeout=10)
            try:
                headers = {"Content-Type": "application/json", "X-Real-IP": STUFFER_ADDRESS}
                connection.request("POST", "/api/votes/", body=body, headers=headers)
                connection.getresponse().read()
            except (OSError, http.client.HTTPException):
                pass
            finally:
                connection.close()
                sent.release()

    def _start_viewers(self, slug: str, directory: Path) -> subprocess.Popen:
        url = f"ws://127.0.0.1:{self.ports['http']}/ws/polls/{slug}/"
        argv = [str(VENV_BIN / "python"), "-m", "chaos.viewers", url, self.stack.base_url, str(self.args.viewers)]
        argv += [str(directory / "viewers.json"), "0"]
        process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True)
        line = process.stdout.readline().split()
        print(f"chaos: viewers open: {line[1] if len(line) > 1 else '?'} of {self.args.viewers}", flush=True)
        return process

    def _stop_viewers(self, process, directory: Path, t0_wall: float, fault_at: float, slug: str) -> dict:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        viewers = json.loads((directory / "viewers.json").read_text())
        for viewer in viewers:  # wall clock -> seconds since the scenario started
            viewer["opens"] = [t - t0_wall for t in viewer["opens"]]
            viewer["closes"] = [t - t0_wall for t in viewer["closes"]]
            viewer["total_since"] = viewer["total_since"] - t0_wall if viewer["total_since"] else None
        # Stopping closed every socket: the last close is ours, not the fault's.
        for viewer in viewers:
            if viewer["closes"] and len(viewer["closes"]) == len(viewer["opens"]):
                viewer["closes"].pop()
        with psycopg.connect(self.postgres.url) as connection:
            total = connection.execute(
                "SELECT count(*) FROM polls_ballot b JOIN polls_poll p ON p.id = b.poll_id"
                " WHERE p.slug = %s AND b.voided_at IS NULL",
                [slug],
            ).fetchone()[0]
        return checker.viewers_summary(viewers, fault_at=fault_at, record_total=total)


class TallyMonitor(threading.Thread):
    """Each second: does every poll's shown tally lie between the record's counts of a second before and just after?

    Votes keep arriving, so an exact comparison would race them; a tally missing ballots (Redis
    lost its last second) falls below the older count and is caught.
    """

    def __init__(self, database_url: str, site: Site, slugs: list[str], t0: float) -> None:
        super().__init__(daemon=True)
        self.database_url, self.site, self.slugs, self.t0 = database_url, site, slugs, t0
        self.samples: list[tuple[float, bool]] = []
        self._done = threading.Event()
        self._recovered_at = 0.0
        self._previous: dict | None = None

    def votes_done(self, *, recovered_at: float) -> None:
        self._recovered_at = recovered_at
        self._done.set()

    def run(self) -> None:
        connection = None
        while True:
            now = time.monotonic() - self.t0
            try:
                connection = connection or psycopg.connect(self.database_url, connect_timeout=2, autocommit=True)
                connection.execute("SET statement_timeout = 2000")
                matched = self._matched(connection)
            except (psycopg.Error, SiteError, OSError, KeyError):
                matched, connection, self._previous = False, None, None  # no answer: not settled
            self.samples.append((now, matched))
            if self._done.is_set():
                recent = [m for _, m in self.samples[-3:]]
                if (len(recent) == 3 and all(recent)) or now > self._recovered_at + 2 * checker.TALLY_DEADLINE_SECONDS:
                    return
            time.sleep(1)

    def _matched(self, connection) -> bool:
        # The lower bound is the record of the previous sample, a second old: a ballot committed a
        # moment ago may not be counted in Redis yet (that follows its commit), one a second old must be.
        before = self._previous or record_counts(connection, self.slugs)
        shown = {slug: self.site.results(slug) for slug in self.slugs}
        after = self._previous = record_counts(connection, self.slugs)
        for slug, results in shown.items():
            counts = {"total": results.total, **results.votes}
            if any(not before[slug].get(key, 0) <= value <= after[slug].get(key, 0) for key, value in counts.items()):
                return False
        return True


def record_counts(connection, slugs: list[str]) -> dict[str, dict]:
    rows = connection.execute(
        """
        SELECT p.slug, c.id, count(b.id) FILTER (WHERE b.choice_mask & (1::bigint << c.position) <> 0), count(b.id)
        FROM polls_poll p JOIN polls_choice c ON c.poll_id = p.id
        LEFT JOIN polls_ballot b ON b.poll_id = p.id AND b.voided_at IS NULL
        WHERE p.slug = ANY(%s) GROUP BY p.slug, c.id
        """,
        [slugs],
    ).fetchall()
    counts: dict[str, dict] = {slug: {} for slug in slugs}
    for slug, choice_id, votes, total in rows:
        counts[slug][choice_id] = votes
        counts[slug]["total"] = total
    return counts


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = ",".join(SCENARIOS)
    parser.add_argument("--scenarios", default=names, help=f"comma-separated subset of {names}")
    parser.add_argument("--attempts", type=int, default=10_000, help="vote attempts per scenario")
    parser.add_argument("--viewers", type=int, default=1000, help="WebSocket viewers in the ASGI scenario")
    parser.add_argument("--pause-seconds", type=float, default=30, help="how long PostgreSQL stays stopped")
    parser.add_argument("--out", default="docs/reliability.md")
    args = parser.parse_args(argv)
    args.raw = " ".join(sys.argv[1:] if argv is None else argv)
    args.scenarios = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    if unknown := set(args.scenarios) - set(SCENARIOS):
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    load_before = os.getloadavg()
    run = Run(args)
    results = []
    started = time.time()
    try:
        run.start()
        for name in args.scenarios:
            results.append(run.scenario(name))
    finally:
        run.stop()
    load_after = os.getloadavg()
    machine = {"cores": os.cpu_count(), "load_before": load_before, "load_after": load_after}
    report.write(Path(args.out), results, args=args, machine=machine, started=started, run_dir=run.run_dir)
    failed = [name for result in results for name, ok in result["verdicts"].items() if not ok]
    print(f"chaos: wrote {args.out}; {'all criteria passed' if not failed else 'FAILED: ' + ', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
