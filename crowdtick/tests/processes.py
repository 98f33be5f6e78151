"""Real server processes for browser tests: started on a free port, stopped by PID."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> None:
    """Skips without Chromium on a workstation; under CI a missing browser is a failure."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing under CI")
        pytest.skip(f"{CHROMIUM} is not installed")


def free_port(within: range | None = None) -> int:
    """A port free now: any the system gives, or the first free one of `within` (a suite's own ports,
    so parallel work on the machine never collides with it)."""
    for port in within or [0]:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError(f"no free port in {within}")


def bin_path(name: str) -> str:
    return str(Path(sys.executable).parent / name)


class Server:
    """One server process; `restart()` kills it by PID and starts the same command on the same port."""

    def __init__(self, args: list[str], *, port: int | None, env: dict[str, str], log: Path) -> None:
        self.args, self.port, self.env, self.log = args, port, env, log
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Server":
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        if self.port:
            self._wait_until_it_answers()
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()

    def _wait_until_it_answers(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.args[0]} exited with {self.process.returncode}; see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.args} did not answer on port {self.port}; see {self.log}")


def uvicorn(port: int, env: dict[str, str], log: Path, *, lifespan: str = "auto") -> Server:
    args = [bin_path("uvicorn"), "crowdtick.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
    return Server(args + ["--ws", "websockets", "--lifespan", lifespan], port=port, env=env, log=log)


def gunicorn(port: int, env: dict[str, str], log: Path) -> Server:
    args = [bin_path("gunicorn"), "crowdtick.wsgi:application", "--bind", f"127.0.0.1:{port}", "--threads", "4"]
    return Server(args, port=port, env=env, log=log)


def broadcaster(env: dict[str, str], log: Path) -> Server:
    return Server([sys.executable, "manage.py", "broadcast"], port=None, env=env, log=log)


def test_database_env(**extra: str) -> dict[str, str]:
    """This process's environment with DATABASE_URL naming pytest's test database (from a test that
    holds a database: the connection's settings are the test database's by then), for server processes."""
    from django.db import connection

    db = connection.settings_dict
    database_url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    return os.environ | {"DATABASE_URL": database_url} | extra


def migrate(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env, check=True)


def form_token(page: str) -> str:
    """The CSRF token of the form on `page` (its cookie is in the session that fetched it)."""
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]


def create_poll(base_url: str, **fields) -> tuple[str, str]:
    """Creates a poll through the landing form; returns its slug and owner page path."""
    session = requests.Session()
    token = form_token(session.get(f"{base_url}/").text)
    data = {"question": "Which talk next?", "choices": ["Databases", "Browsers"], "max_choices": 1}
    data |= {"results_visibility": "always", "dedupe": "none", "csrfmiddlewaretoken": token} | fields
    response = session.post(f"{base_url}/polls/new/", data=data, allow_redirects=False)
    assert response.status_code == 302, response.text[:500]
    manage_path = response.headers["Location"].split("?")[0]
    return manage_path.split("/")[2], manage_path


def vote_on_the_form(base_url: str, slug: str, fields: dict) -> None:
    """One ballot through the poll page's vote form, as a browser without JavaScript sends it (a new
    browser each time: its own voter cookie)."""
    session = requests.Session()
    token = form_token(session.get(f"{base_url}/p/{slug}/").text)
    response = session.post(
        f"{base_url}/p/{slug}/vote/",
        data={**fields, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base_url}/p/{slug}/"},
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text[:500]
