"""Security of the deployed site: production settings, TLS headers, and what the real servers log.

These start subprocesses (manage.py, uvicorn, gunicorn, nginx) on 127.0.0.1 with their own
SQLite file, so they run the same with or without PostgreSQL and Redis.
"""

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from crowdtick.tests import processes
from crowdtick.tests.security_helpers import embedded_env, free_port

ROOT = Path(__file__).resolve().parents[2]
TOKEN_SHAPED = secrets.token_urlsafe(32)  # looks like an owner token; what matters is where it shows up


def production_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "PYTEST_"))}
    return (
        env
        | {
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(64),
            "SECURE_SSL_REDIRECT": "1",
            "ALLOWED_HOSTS": "polls.example.com,testserver",
            "CSRF_TRUSTED_ORIGINS": "https://polls.example.com",
            "DATABASE_URL": "postgres://crowdtick@db.example.com:5432/crowdtick",
            "REDIS_URL": "redis://redis.example.com:6379/0",
        }
        | extra
    )


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_deployment_checklist_passes_with_production_settings():
    checked = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "no issues" in checked.stdout


def test_with_tls_plain_http_is_redirected_and_https_answers_carry_hsts():
    # The test client inside a production-configured process: the headers the settings produce.
    script = (
        "from django.test import Client; import json; c = Client();"
        "plain = c.get('/healthz', headers={'Host': 'polls.example.com'});"
        "tls = c.get('/healthz', headers={'Host': 'polls.example.com', 'X-Forwarded-Proto': 'https'});"
        "print(json.dumps({'plain': [plain.status_code, plain.get('Location')],"
        " 'tls': [tls.status_code, tls.get('Strict-Transport-Security')]}))"
    )
    shell = manage("shell", "-c", script, env=production_env())
    assert shell.returncode == 0, shell.stderr
    answers = json.loads(shell.stdout.strip().splitlines()[-1])
    assert answers["plain"] == [301, "https://polls.example.com/healthz"]
    status, hsts = answers["tls"]
    assert status == 200
    directives = {part.strip().split("=")[0]: part.strip() for part in hsts.split(";")}
    assert int(directives["max-age"].split("=")[1]) >= 31_536_000
    assert "includeSubDomains" in directives


# --- Owner tokens in the servers' logs --------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """An embedded site in a SQLite file with one poll; yields (env, slug, owner token)."""
    env = embedded_env(tmp_path_factory.mktemp("site"), LOG_LEVEL="INFO", PYTHONUNBUFFERED="1")
    assert manage("migrate", "--no-input", "-v0", env=env).returncode == 0
    made = manage(
        "shell",
        "-c",
        "from polls import services; p, t = services.poll_create(question='Q?', choices=['A', 'B']); print(p.slug, t)",
        env=env,
    )
    slug, token = made.stdout.split()[-2:]
    return env, slug, token


def get(port: int, path: str, referer: str) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Referer": referer})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def owner_requests(port: int, slug: str, token: str) -> None:
    """The owner page, a near miss, and a subresource with the owner page as Referer."""
    owner_page = f"http://127.0.0.1:{port}/p/{slug}/manage/{token}/"
    assert get(port, f"/p/{slug}/manage/{token}/", owner_page) == 200
    assert get(port, f"/p/{slug}/manage/{TOKEN_SHAPED}/", owner_page) == 404
    get(port, f"/p/{slug}/qr.svg", owner_page)


def run_server(server: processes.Server, exercise) -> str:
    """Starts `server`, runs `exercise`, stops it by its pid; returns everything it printed."""
    server.start()
    try:
        exercise()
        time.sleep(0.5)  # access logs are written after the response
    finally:
        server.stop()
    return server.log.read_text(errors="replace")


def assert_logged_without_tokens(output: str, slug: str, token: str) -> None:
    assert f"/p/{slug}/manage/[redacted]/" in output, "the requests were not logged at all:\n" + output
    assert token not in output and TOKEN_SHAPED not in output, output


def test_uvicorn_as_make_run_starts_it_logs_owner_paths_without_the_token(site, tmp_path):
    env, slug, token = site
    port = free_port()

    def exercise():
        owner_requests(port, slug, token)
        from websockets.sync.client import connect

        origin = f"http://127.0.0.1:{port}"
        with connect(f"ws://127.0.0.1:{port}/ws/polls/{slug}/manage/{token}/", origin=origin, open_timeout=10) as ws:
            ws.recv(timeout=10)

    # As `make run` starts it: access log on.
    output = run_server(processes.uvicorn(port, env, tmp_path / "uvicorn.log", lifespan="off"), exercise)
    assert_logged_without_tokens(output, slug, token)
    assert f"/ws/polls/{slug}/manage/[redacted]/" in output


def test_gunicorn_with_its_access_log_on_logs_owner_paths_without_the_token(site, tmp_path):
    env, slug, token = site
    port = free_port()
    command = [processes.bin_path("gunicorn"), "crowdtick.wsgi:application", "--config", "deploy/gunicorn.conf.py"]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", "1", "--access-logfile", "-"]
    server = processes.Server(command, port=port, env=env, log=tmp_path / "gunicorn.log")
    output = run_server(server, lambda: owner_requests(port, slug, token))
    assert_logged_without_tokens(output, slug, token)
    assert "qr.svg" in output  # the Referer column is there, masked too


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_access_log_of_make_stack_does_not_record_owner_tokens(tmp_path):
    """nginx logs with its own format, outside Python: deploy/nginx must mask the token itself."""
    port, dead_upstream = free_port(), 9  # the discard port: nothing answers, nginx answers 502
    render = subprocess.run(
        [sys.executable, "deploy/render_nginx.py", str(tmp_path), "--listen", f"127.0.0.1:{port}"]
        + ["--http", f"127.0.0.1:{dead_upstream}", "--ws", f"127.0.0.1:{dead_upstream}"]
        + ["--static-root", str(tmp_path / "static")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert render.returncode == 0, render.stderr
    conf = render.stdout.strip().splitlines()[-1]
    nginx = subprocess.Popen(
        ["nginx", "-g", "daemon off;", "-p", str(tmp_path), "-c", conf, "-e", str(tmp_path / "error.log")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    slug, token = "abcdefghjk", secrets.token_urlsafe(32)
    try:
        deadline = time.monotonic() + 10
        while True:
            if nginx.poll() is not None or time.monotonic() > deadline:
                errors = "".join(path.read_text() for path in tmp_path.glob("*error*.log"))
                raise AssertionError(f"nginx did not start on port {port}:\n{errors}")
            try:
                if get(port, "/healthz", "") == 502:
                    break
            except urllib.error.URLError:
                time.sleep(0.1)
        owner_page = f"http://127.0.0.1:{port}/p/{slug}/manage/{token}/"
        for path in (f"/p/{slug}/manage/{token}/", f"/ws/polls/{slug}/manage/{token}/", f"/p/{slug}/qr.svg"):
            get(port, path, owner_page)
    finally:
        nginx.send_signal(signal.SIGQUIT)  # graceful: flushes the buffered access log
        nginx.communicate(timeout=20)
    logged = "".join(path.read_text() for path in tmp_path.glob("*access*.log"))
    assert f"/p/{slug}/manage/" in logged, "nothing was logged:\n" + logged
    assert token not in logged, logged


# --- `make run`: safe by default, and still needing no setting ---------------------------


@contextlib.contextmanager
def make_run(tmp_path: Path, **extra: str):
    """`make run` as a person types it, on a free port; yields its base URL and stops it by its process group.

    Its SQLite file and generated key go to `tmp_path`, so the checkout is left as it was."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "PYTEST_"))}
    services = ("DATABASE_URL", "REDIS_URL", "REDIS_SHARD_URLS")
    for setting in ("SECRET_KEY", "DEBUG", *services, "CLIENT_IP_HEADER", "ALLOWED_HOSTS"):
        env.pop(setting, None)
    port, log = free_port(), tmp_path / "make-run.log"
    command = ["make", "--no-print-directory", "run", f"PORT={port}", f"SECRET_KEY_FILE={tmp_path / 'secret_key'}"]
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env | {"SQLITE_PATH": str(tmp_path / "db.sqlite3")} | extra,
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while fetch(f"{base}/healthz")[0] != 200:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.2)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


def fetch(url: str, body: dict | None = None, **headers: str) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    headers |= {"Content-Type": "application/json"} if data else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def test_make_run_is_safe_by_default_and_still_needs_no_setting(tmp_path):
    with make_run(tmp_path) as base:
        assert fetch(f"{base}/")[0] == 200
        assert fetch(base.replace("127.0.0.1", "localhost") + "/")[0] == 200
        assert fetch(f"{base}/static/css/crowdtick.css")[0] == 200  # with DEBUG off
        status, page = fetch(f"{base}/no/such/page/")
        assert status == 404 and "URLconf" not in page  # no debug page listing the URLs
        # X-Forwarded-For is not trusted: one ballot per address, however many addresses a client claims.
        status, created = fetch(f"{base}/api/polls/", {"question": "Q?", "choices": ["A", "B"], "dedupe": "ip"})
        assert status == 201, created
        poll = json.loads(created)
        votes = [
            fetch(f"{base}/api/votes/", {"poll": poll["id"], "choices": [poll["choices"][0]["id"]], "voter": voter},
                  **{"X-Forwarded-For": forged})
            for voter, forged in (("one", "198.51.100.1"), ("two", "198.51.100.2"))
        ]  # fmt: skip
        assert [status for status, _ in votes] == [201, 409]
    key_file = tmp_path / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(key_file.read_text().strip()) >= 50
    ignored = subprocess.run(["git", "check-ignore", "--quiet", ".secret_key"], cwd=ROOT)
    assert ignored.returncode == 0, "the default key file .secret_key is not git-ignored"


def test_debug_1_make_run_brings_the_debug_pages_back_with_the_same_key(tmp_path):
    with make_run(tmp_path):
        pass
    key = (tmp_path / "secret_key").read_text()
    with make_run(tmp_path, DEBUG="1") as base:
        status, page = fetch(f"{base}/no/such/page/")
        assert status == 404 and "URLconf" in page
    assert (tmp_path / "secret_key").read_text() == key  # kept: voter cookies stay valid across restarts
