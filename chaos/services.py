"""A private PostgreSQL cluster and Redis server for the run, so faults never touch the machine's shared ones."""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import redis

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class ServiceError(Exception):
    pass


def _wait_until(check, process: subprocess.Popen, what: str, timeout: float) -> bool:
    """True once `check` passes; False if the process exited first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except Exception:  # not up yet, whatever the client calls it
            pass
        if process.poll() is not None:
            return False
        time.sleep(0.2)
    raise ServiceError(f"{what} did not come up within {timeout:.0f} s")


class Service:
    """One server process in its own process group, killed and restarted with the same command."""

    name = "service"

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.process: subprocess.Popen | None = None
        self._log = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def popen_kwargs(self) -> dict:
        return {}

    def start(self, tries: int = 10) -> None:
        """Starts it and waits until it answers. Our ports lie in the kernel's ephemeral range, so another
        program's outgoing socket may hold ours for a moment: a server that cannot bind is started again."""
        self._log = self._log or (self.run_dir / f"{self.name}.log").open("a")
        for _ in range(tries):
            output = {"stdout": self._log, "stderr": subprocess.STDOUT}
            self.process = subprocess.Popen(self.command(), **output, start_new_session=True, **self.popen_kwargs())
            if self.wait_until_up():
                return
            self.process.wait()
            time.sleep(1)
        raise ServiceError(f"{self.name} did not start; see {self.run_dir / self.name}.log")

    def wait_until_up(self) -> bool:
        raise NotImplementedError

    def signal(self, signum: int) -> None:
        """To the whole group: a PostgreSQL server is its postmaster and every backend."""
        os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.signal(signal.SIGCONT)  # a stopped server cannot act on SIGTERM
            self.signal(signal.SIGTERM)
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass


class PostgreSQL(Service):
    """initdb into the run directory, run as the `postgres` user when we are root; fsync stays on."""

    name = "postgresql"

    def __init__(self, run_dir: Path, port: int) -> None:
        super().__init__(run_dir)
        self.port = port
        self.data_dir = run_dir / "pgdata"
        self.socket_dir = run_dir / "pgsocket"
        self.url = f"postgres://postgres@127.0.0.1:{port}/crowdtick"

    def _as_owner(self) -> dict:
        return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}

    def popen_kwargs(self) -> dict:
        return self._as_owner()

    def initdb(self) -> None:
        for path in (self.data_dir, self.socket_dir):
            path.mkdir(mode=0o700)
            if os.geteuid() == 0:
                shutil.chown(path, "postgres", "postgres")
        subprocess.run(
            [str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "-A", "trust", "--no-sync"],
            check=True,
            capture_output=True,
            **self._as_owner(),
        )

    def command(self) -> list[str]:
        return [
            str(PG_BIN / "postgres"),
            "-D", str(self.data_dir),
            "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1",
            "-c", f"unix_socket_directories={self.socket_dir}",
            "-c", "fsync=on",
            "-c", "max_connections=300",
        ]  # fmt: skip

    def signal(self, signum: int) -> None:
        """To the postmaster, then every backend and helper: PostgreSQL's children leave its process
        group (setsid), so signalling the group would stop the postmaster alone. A stopped postmaster
        forks nothing more, so none is missed."""
        pid = self.process.pid
        os.kill(pid, signum)
        for child in _children(pid):
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass

    def wait_until_up(self) -> bool:
        maintenance = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        return _wait_until(
            lambda: psycopg.connect(maintenance, connect_timeout=2).close() is None, self.process, "PostgreSQL", 60
        )


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


class Redis(Service):
    """Append-only file fsynced every second, as production runs it."""

    name = "redis"

    def __init__(self, run_dir: Path, port: int) -> None:
        super().__init__(run_dir)
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.data_dir = run_dir / "redis"
        self.data_dir.mkdir(exist_ok=True)

    def command(self) -> list[str]:
        return [
            "redis-server",
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--maxclients", "20000",
        ]  # fmt: skip

    def wait_until_up(self) -> bool:
        return _wait_until(lambda: redis.Redis(port=self.port, socket_timeout=2).ping(), self.process, "Redis", 60)
