"""Live results in real Chromium: pages update without reload, and survive a server restart."""

import os
import re
import signal

import pytest
import requests
from django.conf import settings

from crowdtick.tests import processes

pytestmark = pytest.mark.browser

# Records what the page's sockets and bars do, for assertions (Playwright injects this past the CSP).
_RECORDER = """
window.__closes = [];
window.__transitions = [];
window.__sockets = [];
const NativeWebSocket = window.WebSocket;
window.WebSocket = class extends NativeWebSocket {
  constructor(...args) { super(...args); window.__sockets.push(this); }
};
document.addEventListener("htmx:wsClose", (e) => window.__closes.push(e.detail.event.code));
document.addEventListener("transitionrun", (e) => {
  if (e.propertyName === "width") window.__transitions.push(e.target.id);
});
"""


def _embedded_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    return env | {"SECRET_KEY": "browser-test", "SQLITE_PATH": str(tmp_path / "db.sqlite3"), "RATELIMIT_ENABLE": "0"}


def create_poll(base_url: str, **fields) -> tuple[str, str]:
    """Creates a poll through the landing form; returns its slug and owner page path."""
    session = requests.Session()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', session.get(f"{base_url}/").text).group(1)
    data = {"question": "Which talk next?", "choices": ["Databases", "Browsers"], "max_choices": 1}
    data |= {"results_visibility": "always", "dedupe": "none", "csrfmiddlewaretoken": token} | fields
    response = session.post(f"{base_url}/polls/new/", data=data, allow_redirects=False)
    assert response.status_code == 302, response.text[:500]
    manage_path = response.headers["Location"].split("?")[0]
    return manage_path.split("/")[2], manage_path


def _open(browser, url):
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.add_init_script(_RECORDER)
    page.goto(url)
    _expect_live(page)
    return page


def _expect_live(page):
    page.wait_for_selector("[data-live-indicator][data-state=live]", timeout=15_000)


def _vote(browser, base_url, slug, choice_text):
    page = browser.new_context().new_page()
    page.goto(f"{base_url}/p/{slug}/")
    page.get_by_label(choice_text).check()
    page.get_by_role("button", name="Vote").click()
    page.wait_for_selector("text=Thanks, your vote is in.")
    page.context.close()


def _expect_votes(page, version, text):
    page.wait_for_selector(f"#results[data-version='{version}']", timeout=15_000)
    assert text in page.inner_text("#results")


def _expect_bar_widths(page, expected: list[int]) -> None:
    measure = """[...document.querySelectorAll('#results .bar-fill')].map(bar => Math.round(
        100 * bar.getBoundingClientRect().width / bar.ownerSVGElement.getBoundingClientRect().width))"""
    for _ in range(30):
        if sorted(page.evaluate(measure), reverse=True) == expected:
            return
        page.wait_for_timeout(100)
    assert sorted(page.evaluate(measure), reverse=True) == expected


def test_results_page_and_kiosk_update_without_reload_and_after_a_server_restart(chromium, tmp_path):
    env = _embedded_env(tmp_path)
    processes.migrate(env)
    server = processes.uvicorn(processes.free_port(), env, tmp_path / "uvicorn.log").start()
    try:
        slug, _ = create_poll(server.url)
        results = _open(chromium, f"{server.url}/p/{slug}/results/")
        kiosk = _open(chromium, f"{server.url}/p/{slug}/live/")
        navigations = []
        results.on("framenavigated", lambda frame: navigations.append(frame.url))

        _vote(chromium, server.url, slug, "Browsers")
        _expect_votes(results, 1, "1 vote")
        _expect_votes(kiosk, 1, "1 vote")
        assert "100%" in kiosk.inner_text("#results")
        # Each bar is drawn at its share of the track, once its transition has run.
        _expect_bar_widths(kiosk, [100, 0])
        # The bar grew from its old width: a CSS transition ran on the element htmx swapped in.
        assert results.evaluate("window.__transitions").count(results.evaluate(
            "document.querySelector('.bar.is-leading .bar-fill').id"
        )) >= 1

        # A clean close (1000) is not retried by the htmx extension itself; live.js must.
        results.evaluate("window.__sockets.at(-1).close(1000)")
        # Polled from Python: wait_for_function's in-page polling evaluates code, which the CSP forbids.
        for _ in range(50):
            if results.evaluate("window.__closes.includes(1000)"):
                break
            results.wait_for_timeout(100)
        assert results.evaluate("window.__closes.includes(1000)")
        _expect_live(results)

        # The server goes away and comes back on the same port: pages reconnect and resync.
        server.restart(signal.SIGKILL)
        _vote(chromium, server.url, slug, "Databases")
        _vote(chromium, server.url, slug, "Databases")
        for page in (results, kiosk):
            _expect_live(page)
            _expect_votes(page, 3, "3 votes")
            assert "2 votes" in page.inner_text("#results")
        assert results.evaluate("window.__closes").count(1006) >= 1
        assert navigations == []  # never reloaded
    finally:
        server.stop()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not settings.REDIS_URL, reason="several processes share a channel layer only through Redis")
def test_a_vote_through_the_wsgi_server_reaches_a_viewer_of_another_asgi_process(chromium, tmp_path):
    from django.db import connection

    database = connection.settings_dict
    env = os.environ | {
        "SECRET_KEY": "browser-test",
        "RATELIMIT_ENABLE": "0",
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
    }
    servers = [
        processes.gunicorn(processes.free_port(), env, tmp_path / "gunicorn.log"),
        processes.uvicorn(processes.free_port(), env, tmp_path / "ws1.log", lifespan="off"),
        processes.uvicorn(processes.free_port(), env, tmp_path / "ws2.log", lifespan="off"),
        processes.broadcaster(env, tmp_path / "broadcaster.log"),
    ]
    try:
        for server in servers:
            server.start()
        wsgi, ws1, ws2, _ = servers
        slug, manage_path = create_poll(wsgi.url)
        first = _open(chromium, f"{ws1.url}/p/{slug}/results/")
        second = _open(chromium, f"{ws2.url}/p/{slug}/live/")
        owner = _open(chromium, f"{ws2.url}{manage_path}")
        _vote(chromium, wsgi.url, slug, "Databases")
        for page in (first, second, owner):
            _expect_votes(page, 1, "1 vote")
    finally:
        for server in reversed(servers):
            server.stop()
