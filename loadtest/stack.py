"""The production stack under test: `scripts/stack` (what `make stack` runs) on ports of our choosing."""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from loadtest.programs import programs_require
from loadtest.site import Site

ROOT = Path(__file__).resolve().parent.parent


class StackError(Exception):
    pass


def free_ports(count: int) -> list[int]:
    """Ports the OS says are free now (held together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class Stack:
    """Runs `scripts/stack` in its own process group; stops it with SIGTERM, as Ctrl-C would.

    `ports` are nginx's, then the two gunicorn and the two ASGI servers'.
    """

    def __init__(self, *, run_dir: Path, database_url: str, redis_url: str, ports: list[int], extra_env: dict) -> None:
        self.run_dir = run_dir
        self.http_port = ports[0]
        self.base_url = f"http://127.0.0.1:{self.http_port}"
        self.env = {
            **os.environ,
            **extra_env,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "CT_RUN_DIR": str(run_dir),
            "CT_HTTP_PORT": str(ports[0]),
            "CT_WEB1_PORT": str(ports[1]),
            "CT_WEB2_PORT": str(ports[2]),
            "CT_WS1_PORT": str(ports[3]),
            "CT_WS2_PORT": str(ports[4]),
        }
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 900) -> "Stack":
        """Starts it and waits until it answers (migrations and collectstatic come first: minutes on a busy machine)."""
        programs_require("nginx")  # here, not in the stack's log minutes later
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log = (self.run_dir / "stack.log").open("w")
        self.process = subprocess.Popen(
            [str(ROOT / "scripts" / "stack")],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_until_ready(timeout)
        except BaseException:  # Ctrl-C or not ready: nothing of the stack may outlive the run
            self.stop()
            raise
        return self

    def _wait_until_ready(self, timeout: float) -> None:
        site = Site(self.base_url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StackError(f"the stack exited early; see {self.run_dir / 'stack.log'}")
            try:
                if site.request("GET", "/readyz").status == 200 and self._all_running():
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise StackError(f"the stack was not ready within {timeout:.0f} s; see {self.run_dir / 'stack.log'}")

    def _all_running(self) -> bool:
        """Every WebSocket server answers too (readiness only proves one gunicorn)."""
        for port in (self.env["CT_WS1_PORT"], self.env["CT_WS2_PORT"]):
            try:
                socket.create_connection(("127.0.0.1", int(port)), timeout=1).close()
            except OSError:
                return False
        return True

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
