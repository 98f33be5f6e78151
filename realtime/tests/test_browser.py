"""Live results in real Chromium: pages update without reload, and survive a server restart."""

import os
import signal

import pytest
from django.conf import settings

from crowdtick.tests import processes
from crowdtick.tests.processes import create_poll

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
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "REDIS_SHARD_URLS")}
    return env | {"SECRET_KEY": "browser-test", "SQLITE_PATH": str(tmp_path / "db.sqlite3"), "RATELIMIT_ENABLE": "0"}


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
    env = processes.test_database_env(SECRET_KEY="browser-test", RATELIMIT_ENABLE="0")
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


# Everything the back of the hall must see, with its bounding box (and every bar's), for the fit test.
_KIOSK_BOXES = """() => {
  const box = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const one = (selector) => box(document.querySelector(selector));
  return {
    scroll: [document.scrollingElement.scrollWidth, document.scrollingElement.scrollHeight],
    question: one('.kiosk-question'), link: one('.kiosk-link'), qr: one('.kiosk-qr'),
    total: one('#results-total'),
    bars: [...document.querySelectorAll('#results .bar')].map(box),
    questionPx: parseFloat(getComputedStyle(document.querySelector('.kiosk-question')).fontSize),
    barTextPx: Math.min(...[...document.querySelectorAll('#results .bar-text')].map(
      (el) => parseFloat(getComputedStyle(el).fontSize))),
  };
}"""


@pytest.mark.parametrize("viewport", [(1920, 1080), (1280, 720)])
@pytest.mark.parametrize("count", [8, 20])
def test_the_big_screen_fits_one_screen_with_up_to_20_choices_and_a_200_character_question(
    chromium, tmp_path, viewport, count
):
    env = _embedded_env(tmp_path)
    processes.migrate(env)
    server = processes.uvicorn(processes.free_port(), env, tmp_path / "uvicorn.log").start()
    try:
        question = (
            "Which of these twenty proposals should the committee fund first this year, given the budget we have, "
            "the people we can hire and the deadlines the board set for the spring term? Pick one only, please!!"
        )
        assert len(question) == 200
        choices = [f"Proposal {n}: a longer name for the idea" for n in range(1, count + 1)]
        slug, _ = create_poll(server.url, question=question, choices=choices)
        width, height = viewport
        page = chromium.new_context(viewport={"width": width, "height": height}).new_page()
        page.goto(f"{server.url}/p/{slug}/live/")
        page.wait_for_selector("#results .bar")
        seen = page.evaluate(_KIOSK_BOXES)

        def inside(box):
            left, top, right, bottom = box
            return left >= 0 and top >= 0 and right <= width + 0.5 and bottom <= height + 0.5

        assert seen["scroll"][0] <= width and seen["scroll"][1] <= height, seen["scroll"]
        for name in ("question", "link", "qr", "total"):
            assert inside(seen[name]), (name, seen[name])
        assert len(seen["bars"]) == count and all(inside(bar) for bar in seen["bars"]), seen["bars"]
        # Still readable from the back: at least 1.6% (question) and 1.3% (choices) of the screen's height.
        assert seen["questionPx"] >= 0.016 * height and seen["barTextPx"] >= 0.013 * height, seen
        if os.environ.get("KIOSK_SCREENSHOTS"):  # to look at it: KIOSK_SCREENSHOTS=<dir>
            page.screenshot(path=f"{os.environ['KIOSK_SCREENSHOTS']}/kiosk-{count}-{width}x{height}.png")
        page.context.close()
    finally:
        server.stop()
