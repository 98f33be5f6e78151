"""CPU and memory of every process of the run, sampled with psutil once a second (or every `interval`).

Each sample is one JSON line: the time, the machine's cumulative busy and total CPU seconds,
and per process its role, cumulative CPU seconds and resident memory (and, with `uss`, its
unique memory: what it alone holds, without the pages it shares). A process seen for the first
time is also described once under "new": its name, command line and parent, so a reader can
tell a master from its workers. The report turns two samples into CPU% over a step's window,
so nothing is averaged away before it is needed.
"""

import json
import threading
import time
from pathlib import Path

import psutil
import psycopg

# Roles by what a process's command line contains, first match wins.
ROLES = [
    ("nginx", "nginx"),
    ("gunicorn", "gunicorn (HTTP)"),
    ("uvicorn", "uvicorn (WebSockets)"),
    ("celery worker", "celery worker"),
    ("celery beat", "celery beat"),
    ("broadcast", "broadcaster"),
    ("locust", "locust (load generator)"),
    ("honcho", "honcho (supervisor)"),
]


def role_of(process: psutil.Process) -> str:
    try:
        if process.name() in ("sh", "dash", "bash"):
            return "honcho (supervisor)"  # the shells honcho starts each command with
        command = " ".join(process.cmdline()) or process.name()
    except psutil.Error:
        return "gone"
    for needle, role in ROLES:
        if needle in command:
            return role
    if "celery" in command:
        return "celery worker" if " worker" in command else "celery beat"
    return "other of the stack"


class Sampler:
    """Samples the trees of `roots` (the stack, Locust), PostgreSQL's backends of our database and Redis."""

    def __init__(self, *, out: Path, database_url: str, interval: float = 1.0, uss: bool = False) -> None:
        self.out = out
        self.database_url = database_url
        self.interval = interval
        # Unique memory reads /proc/<pid>/smaps_rollup: worth it every 15 s of a soak, not every second.
        self.uss = uss
        self._new: dict[str, list] = {}
        self.roots: list[int] = []
        self._roles: dict[int, tuple[str, psutil.Process]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._redis = next((p for p in psutil.process_iter(["name"]) if p.info["name"] == "redis-server"), None)

    def watch(self, pid: int) -> None:
        self.roots.append(pid)

    def start(self) -> "Sampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        with self.out.open("a") as out, psycopg.connect(self.database_url, autocommit=True) as connection:
            while not self._stop.is_set():
                started = time.monotonic()
                out.write(json.dumps(self.sample(connection)) + "\n")
                out.flush()
                self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def sample(self, connection) -> dict:
        processes: dict[int, str] = {}
        for root in self.roots:
            try:
                tree = psutil.Process(root)
                for process in [tree, *tree.children(recursive=True)]:
                    processes[process.pid] = ""
            except psutil.Error:
                continue
        backends = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
        for (pid,) in backends:
            processes[pid] = "postgres (this database)"
        if self._redis is not None:
            processes[self._redis.pid] = "redis (shared server)"

        cpu = psutil.cpu_times()
        idle = cpu.idle + getattr(cpu, "iowait", 0.0)
        sample = {"t": time.time(), "machine": {"total": sum(cpu), "busy": sum(cpu) - idle}, "processes": {}}
        for pid, role in processes.items():
            process = self._process(pid, role)
            if process is None:
                continue
            try:
                with process[1].oneshot():
                    times = process[1].cpu_times()
                    rss = process[1].memory_info().rss
                    entry = [process[0], times.user + times.system, rss]
                    if self.uss:
                        entry.append(_uss(process[1]))
            except psutil.Error:
                continue
            sample["processes"][str(pid)] = entry
        if self._new:
            sample["new"], self._new = self._new, {}
        return sample

    def _process(self, pid: int, role: str) -> tuple[str, psutil.Process] | None:
        """One psutil handle per pid, so CPU seconds are read from the same process each time."""
        known = self._roles.get(pid)
        if known is None:
            try:
                handle = psutil.Process(pid)
            except psutil.Error:
                return None
            known = (role or role_of(handle), handle)
            self._roles[pid] = known
            try:
                self._new[str(pid)] = [handle.name(), " ".join(handle.cmdline())[:300], handle.ppid()]
            except psutil.Error:
                pass
        return known


def _uss(process: psutil.Process) -> int | None:
    try:
        return process.memory_full_info().uss
    except psutil.AccessDenied:  # another user's process, when not run as root
        return None
