"""The production topology of the Procfile on private ports, against the run's own PostgreSQL and Redis.

Prepared as scripts/stack prepares it (settings from the environment, migrate, collectstatic when
static files changed, nginx rendered by deploy/render_nginx.py); then each process runs on its own.
"""

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

from chaos.processes import Process, procfile_commands
from crowdtick.database import ensure_database
from loadtest.programs import programs_require
from loadtest.site import Site

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"


class StackError(Exception):
    pass


class ChaosStack:
    def __init__(self, *, run_dir: Path, database_url: str, redis_url: str, ports: dict[str, int]) -> None:
        self.run_dir = run_dir
        self.ports = ports
        self.base_url = f"http://127.0.0.1:{ports['http']}"
        self.database_url = database_url
        self.env = {
            **os.environ,
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "SECRET_KEY": secrets.token_urlsafe(50),
            "DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "CLIENT_IP_HEADER": "HTTP_X_REAL_IP",
            "STATIC_MANIFEST": "1",
            "PYTHONUNBUFFERED": "1",
            # Every client of the run comes from 127.0.0.1: the per-address limit would refuse most votes.
            "RATELIMIT_ENABLE": "0",
            "CT_RUN_DIR": str(run_dir),
            "CT_HTTP_PORT": str(ports["http"]),
            "CT_WEB1_PORT": str(ports["web1"]),
            "CT_WEB2_PORT": str(ports["web2"]),
            "CT_WS1_PORT": str(ports["ws1"]),
            "CT_WS2_PORT": str(ports["ws2"]),
        }
        commands = procfile_commands(ROOT / "Procfile", self.env)
        self.processes = {
            name: Process(name, argv, cwd=ROOT, env=self.env, log_dir=run_dir) for name, argv in commands.items()
        }

    def prepare(self) -> None:
        programs_require("nginx")
        ensure_database(self.database_url)
        python = str(VENV_BIN / "python")
        # A migration may take longer than the request-time bound on database waits.
        self._run([python, "manage.py", "migrate", "--no-input"], DB_WAIT_TIMEOUT="0")
        manifest = ROOT / "staticfiles" / "staticfiles.json"
        if not manifest.exists() or any(
            path.stat().st_mtime > manifest.stat().st_mtime for path in (ROOT / "static").rglob("*")
        ):
            self._run([python, "manage.py", "collectstatic", "--no-input", "--verbosity", "0"])
        listen = ["--listen", f"127.0.0.1:{self.ports['http']}"]
        upstreams = ["--http", f"127.0.0.1:{self.ports['web1']}", "--http", f"127.0.0.1:{self.ports['web2']}"]
        upstreams += ["--ws", f"127.0.0.1:{self.ports['ws1']}", "--ws", f"127.0.0.1:{self.ports['ws2']}"]
        static = ["--static-root", str(ROOT / "staticfiles")]
        self._run([python, "deploy/render_nginx.py", str(self.run_dir), *listen, *upstreams, *static])

    def _run(self, argv: list[str], **extra_env: str) -> None:
        result = subprocess.run(argv, cwd=ROOT, env={**self.env, **extra_env}, capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"{' '.join(argv[1:3])} failed: {result.stderr[-2000:]}")

    def start(self, timeout: float = 180) -> None:
        for process in self.processes.values():
            process.start()
        self.wait_until_ready(timeout)

    def wait_until_ready(self, timeout: float = 120) -> None:
        site = Site(self.base_url)
        deadline = time.monotonic() + timeout
        starts = dict.fromkeys(self.processes, 1)
        while time.monotonic() < deadline:
            for name in [name for name, process in self.processes.items() if not process.running]:
                # Our ports lie in the kernel's ephemeral range: a client's outgoing socket may hold one
                # for a moment. Starting again is what a supervisor would do.
                if starts[name] >= 5:
                    raise StackError(f"{name} exited {starts[name]} times; see {self.run_dir}/{name}.log")
                starts[name] += 1
                time.sleep(1)
                self.processes[name].start()
            try:
                if site.request("GET", "/readyz").status == 200 and all(
                    _listening(self.ports[name]) for name in ("web1", "web2", "ws1", "ws2")
                ):
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise StackError(f"the stack was not ready within {timeout:.0f} s")

    def wait_listening(self, name: str, timeout: float = 60) -> float:
        """Waits until the process `name` accepts connections; returns the monotonic time it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _listening(self.ports[name]):
                return time.monotonic()
            if not self.processes[name].running:  # its port was briefly taken (see wait_until_ready)
                time.sleep(0.5)
                self.processes[name].start()
            time.sleep(0.1)
        raise StackError(f"{name} did not listen again within {timeout:.0f} s")

    def stop(self) -> None:
        for process in self.processes.values():
            try:
                process.stop()
            except Exception as error:  # stop the others anyway
                print(f"chaos: stopping {process.name}: {error}", file=sys.stderr)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False
