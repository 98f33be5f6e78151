#!/usr/bin/env python3
"""Screenshots of the core pages into docs/screenshots/: landing, poll, results and owner page at
phone (390 px) and desktop (1280 px) width, and a few in dark mode.

Starts its own embedded server (uvicorn, SQLite in a temporary directory) on SCREENSHOT_PORT
(default 8210), creates a realistic poll, votes through the site from separate browsers, drives
Chromium at /usr/bin/chromium, then stops the server by its PID.

    make screenshots        # or: DEBUG=1 .venv/bin/python scripts/screenshots.py
"""

import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
PORT = int(os.environ.get("SCREENSHOT_PORT", "8210"))
BASE = f"http://127.0.0.1:{PORT}"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WIDTHS = {"phone": (390, 844), "desktop": (1280, 900)}
QUESTION = "Where should the spring team offsite be?"
DESCRIPTION = "Three days in May, flights booked by the office. Pick the one you would enjoy most."
VOTES = {"Lisbon": 14, "Kraków": 9, "Edinburgh": 6, "Valencia": 3}


def start_server(workdir: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "REDIS_SHARD_URLS")}
    env |= {"DEBUG": "1", "SQLITE_PATH": str(workdir / "db.sqlite3"), "RATELIMIT_ENABLE": "0"}
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env, check=True)
    uvicorn = str(Path(python).parent / "uvicorn")
    log = open(workdir / "uvicorn.log", "wb")  # noqa: SIM115 (lives as long as the server)
    server = subprocess.Popen(
        [uvicorn, "crowdtick.asgi:application", "--host", "127.0.0.1", "--port", str(PORT), "--ws", "websockets"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited; see {workdir / 'uvicorn.log'}")
        try:
            if requests.get(f"{BASE}/healthz", timeout=1).ok:
                return server
        except requests.ConnectionError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit(f"the server did not answer on port {PORT}")


def csrf_token(session: requests.Session, url: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', session.get(url).text)[1]


def create_poll() -> tuple[str, str]:
    """Creates the poll as its owner would; returns the slug and the owner page's path."""
    session = requests.Session()
    closes_at = (datetime.now(UTC) + timedelta(hours=26)).strftime("%Y-%m-%dT%H:%M")
    data = {"question": QUESTION, "description": DESCRIPTION, "choices": list(VOTES), "closes_at": closes_at,
            "tz": "UTC", "results_visibility": "always", "dedupe": "browser",
            "csrfmiddlewaretoken": csrf_token(session, f"{BASE}/")}
    response = session.post(f"{BASE}/polls/new/", data=data, allow_redirects=False)
    response.raise_for_status()
    manage = response.headers["Location"]
    return manage.split("/")[2], manage


def cast_votes(slug: str) -> None:
    """Each vote from its own browser (its own cookie jar), as the poll's duplicate protection wants."""
    page = requests.get(f"{BASE}/p/{slug}/").text
    ids = {text: value for value, text in re.findall(r'value="(\d+)"[^>]*>\s*<span[^>]*>([^<]+)</span>', page)}
    for text, count in VOTES.items():
        for _ in range(count):
            voter = requests.Session()
            token = csrf_token(voter, f"{BASE}/p/{slug}/")
            voter.post(f"{BASE}/p/{slug}/vote/", data={"csrfmiddlewaretoken": token, "choice": ids[text]},
                       allow_redirects=False).raise_for_status()


def shoot(browser, name: str, url: str, *, width: str, dark: bool = False, before=None) -> None:
    viewport = dict(zip(("width", "height"), WIDTHS[width], strict=True))
    context = browser.new_context(viewport=viewport, color_scheme="dark" if dark else "light",
                                  device_scale_factor=1, reduced_motion="reduce", timezone_id="Europe/Lisbon")
    page = context.new_page()
    page.goto(url, wait_until="networkidle")
    if before:
        before(page)
    page.wait_for_timeout(300)
    path = OUT / f"{name}-{width}{'-dark' if dark else ''}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"wrote {path.relative_to(ROOT)}")
    context.close()


def pick_a_choice(page) -> None:
    page.get_by_label("Kraków").check()


def open_the_options(page) -> None:
    page.get_by_text("Options").click()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="crowdtick-shots-") as workdir:
        server = start_server(Path(workdir))
        try:
            slug, manage = create_poll()
            cast_votes(slug)
            pages = {
                "landing": f"{BASE}/",
                "poll": f"{BASE}/p/{slug}/",
                "results": f"{BASE}/p/{slug}/results/",
                "owner": f"{BASE}{manage}",
            }
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                prepare = {"poll": pick_a_choice, "landing": open_the_options}
                for width in WIDTHS:
                    for name, url in pages.items():
                        shoot(browser, name, url, width=width, before=prepare.get(name))
                for name in ("landing", "poll", "results"):
                    shoot(browser, name, pages[name], width="phone", dark=True, before=prepare.get(name))
                shoot(browser, "owner", pages["owner"], width="desktop", dark=True)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
