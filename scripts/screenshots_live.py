#!/usr/bin/env python3
"""Screenshots of the live views into docs/screenshots/: the kiosk at 1920×1080 (dark, light and
closed), the stream overlay (transparent PNG) and the live results page on a phone.

Starts its own embedded server (SQLite in a temporary directory) on SCREENSHOT_PORT (default
8120), creates a poll, votes through the site, and drives Chromium at /usr/bin/chromium.

    .venv/bin/python scripts/screenshots_live.py
"""

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
PORT = int(os.environ.get("SCREENSHOT_PORT", "8120"))
BASE = f"http://127.0.0.1:{PORT}"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VOTES = {"Databases that never lose a vote": 41, "Browsers and the modern web": 67, "Networks at scale": 23,
         "Tools we wish we had": 12}


def _csrf(session: requests.Session, url: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', session.get(url).text).group(1)


def make_poll() -> tuple[str, str]:
    session = requests.Session()
    closes_at = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() + 3 * 3600 + 754))
    data = {"question": "Which track should open tomorrow morning?", "choices": list(VOTES), "max_choices": 1,
            "results_visibility": "always", "dedupe": "none", "closes_at": closes_at, "tz": "UTC",
            "csrfmiddlewaretoken": _csrf(session, f"{BASE}/")}
    response = session.post(f"{BASE}/polls/new/", data=data, allow_redirects=False)
    response.raise_for_status()
    manage = response.headers["Location"].split("?")[0]
    slug = manage.split("/")[2]
    page = session.get(f"{BASE}/p/{slug}/").text
    ids = dict((text, value) for value, text in re.findall(r'value="(\d+)"[^>]*>\s*<span[^>]*>([^<]+)</span>', page))
    token = _csrf(session, f"{BASE}/p/{slug}/")
    for text, count in VOTES.items():
        for _ in range(count):
            session.post(f"{BASE}/p/{slug}/vote/", data={"csrfmiddlewaretoken": token, "choice": ids[text]},
                         allow_redirects=False)
    return slug, manage


def close_poll(manage: str) -> None:
    session = requests.Session()
    token = _csrf(session, f"{BASE}{manage}")
    session.post(f"{BASE}{manage}close/", data={"csrfmiddlewaretoken": token}, allow_redirects=False)


def main() -> None:
    workdir = tempfile.mkdtemp(prefix="ct-shots-")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "REDIS_SHARD_URLS")}
    env |= {"DEBUG": "1", "SQLITE_PATH": f"{workdir}/db.sqlite3", "RATELIMIT_ENABLE": "0"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "uvicorn"), "crowdtick.asgi:application", "--host", "127.0.0.1",
         "--port", str(PORT), "--ws", "websockets", "--no-access-log"],
        cwd=ROOT, env=env, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                requests.get(f"{BASE}/healthz", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.1)
        slug, manage = make_poll()
        OUT.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                                 args=CHROMIUM_ARGS)

            def shot(path: str, name: str, width: int, height: int, transparent: bool = False) -> None:
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(f"{BASE}{path}")
                page.wait_for_selector("[data-live-indicator][data-state=live]")
                page.wait_for_timeout(1200)  # bars finish their transition, the countdown ticks
                page.screenshot(path=str(OUT / name), omit_background=transparent)
                page.close()
                print(f"docs/screenshots/{name}")

            shot(f"/p/{slug}/live/", "kiosk-1920x1080.png", 1920, 1080)
            shot(f"/p/{slug}/live/?theme=light", "kiosk-light-1920x1080.png", 1920, 1080)
            shot(f"/p/{slug}/live/?overlay=1", "overlay-1920x1080.png", 1920, 1080, transparent=True)
            shot(f"/p/{slug}/results/", "live-results-phone.png", 390, 844)
            close_poll(manage)
            shot(f"/p/{slug}/live/", "kiosk-closed-1920x1080.png", 1920, 1080)
            browser.close()
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
