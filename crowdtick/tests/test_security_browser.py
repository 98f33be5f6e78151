"""The Content-Security-Policy and hostile input in real Chromium.

Pages are served by the ASGI server of `make run` (HTTP and WebSockets), so live pages really
connect and swap pushed fragments under the policy.
"""

import re
from urllib.parse import urlsplit

import pytest
import requests

from crowdtick.tests import processes
from crowdtick.tests.security_helpers import FORMULA_CHOICES, HTMX_PAYLOAD, IMG_PAYLOAD, embedded_env, free_port

pytestmark = pytest.mark.browser

# Runs in every page before its own scripts (Playwright injects it past the CSP): each violation
# the browser reports becomes a console message the test collects.
_REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`securitypolicyviolation: ${e.effectiveDirective} blocked ${e.blockedURI || "inline"}`);
});
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    processes.require_chromium()
    tmp = tmp_path_factory.mktemp("browser-site")
    env = embedded_env(tmp, RATELIMIT_ENABLE="0")
    processes.migrate(env)
    server = processes.uvicorn(free_port(), env, tmp / "uvicorn.log").start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def browser(site):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=processes.CHROMIUM, headless=True, args=processes.CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


class Watched:
    """A page whose CSP violations, dialogs and requests are recorded."""

    def __init__(self, browser):
        self.context = browser.new_context(viewport={"width": 1280, "height": 800})
        self.context.add_init_script(_REPORT_VIOLATIONS)
        self.page = self.context.new_page()
        self.violations: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[tuple[str, str, dict]] = []
        self.page.on("console", self._console)
        self.page.on("dialog", self._dialog)
        self.page.on("request", lambda r: self.requests.append((r.method, r.url, r.headers)))

    def _console(self, message):
        text = message.text
        if "securitypolicyviolation" in text or "Content Security Policy" in text:
            self.violations.append(f"{self.page.url}: {text}")

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, url: str, *, live: bool = False):
        self.page.goto(url)
        self.page.wait_for_load_state("load")
        if live:
            self.page.wait_for_selector("[data-live-indicator][data-state=live]", timeout=15_000)
        return self.page

    def requests_to_payload_targets(self) -> list[str]:
        # `<img src=x>` would fetch …/x next to the page; `hx-get=/x` would fetch /x.
        return [url for _, url, _ in self.requests if urlsplit(url).path.rstrip("/").endswith("/x")]


def create_poll_in_the_browser(watched: Watched, site: str, question: str, choices: list[str]) -> str:
    """Fills the landing form (adding a row with HTMX); returns the owner page's URL."""
    page = watched.open(f"{site}/")
    page.fill("#id_question", question)
    rows = page.locator("#choice-list input[name=choices]")
    rows_before = rows.count()
    page.get_by_role("button", name="+ Add a choice").click()
    # The row HTMX swapped in (a locator, not wait_for_function: Playwright polls that by eval,
    # which the CSP blocks). Without HTMX the button would have reloaded the whole form.
    rows.nth(rows_before).wait_for()
    assert rows.count() == rows_before + 1 >= len(choices)
    assert urlsplit(page.url).path == "/", "the form was posted instead of the row being swapped in"
    for index, text in enumerate(choices):
        rows.nth(index).fill(text)
    page.get_by_role("button", name="Create poll").click()
    page.wait_for_url(re.compile(r"/manage/"))
    return page.url.split("?")[0]


@pytest.fixture(scope="module")
def hostile_poll(browser, site) -> tuple[str, str]:
    """A poll made through the site with the payloads as question and choices: (slug, owner URL)."""
    watched = Watched(browser)
    question = f"{IMG_PAYLOAD} {HTMX_PAYLOAD}"
    owner_url = create_poll_in_the_browser(watched, site, question, [IMG_PAYLOAD, HTMX_PAYLOAD, FORMULA_CHOICES[0]])
    watched.context.close()
    return urlsplit(owner_url).path.split("/")[2], owner_url


def test_no_page_violates_the_policy_and_an_htmx_vote_works_under_it(browser, site, hostile_poll):
    slug, owner_url = hostile_poll
    watched = Watched(browser)
    create_poll_in_the_browser(watched, site, "Tea or coffee?", ["Tea", "Coffee", "Water"])

    page = watched.open(f"{site}/p/{slug}/")
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.get_by_label(FORMULA_CHOICES[0], exact=True).check()
    page.get_by_role("button", name="Vote").click()
    page.wait_for_selector("text=Thanks, your vote is in.")
    votes = [(method, headers) for method, url, headers in watched.requests if url.endswith(f"/p/{slug}/vote/")]
    assert votes and votes[-1][0] == "POST" and votes[-1][1].get("hx-request") == "true"
    assert navigations == [], "the vote reloaded the page instead of swapping the fragment"
    assert page.locator("#results .bar").count() == 3

    for path in (f"/p/{slug}/results/", f"/p/{slug}/live/", f"/p/{slug}/live/?overlay=1"):
        watched.open(f"{site}{path}", live=True)
    watched.open(owner_url, live=True)
    if requests.get(f"{site}/api/docs/", timeout=10).status_code == 200:
        watched.open(f"{site}/api/docs/")
        watched.page.wait_for_timeout(1000)
    watched.page.wait_for_timeout(300)
    watched.context.close()
    assert watched.violations == []


def test_hostile_questions_and_choices_do_not_run_in_the_browser(browser, site, hostile_poll):
    slug, owner_url = hostile_poll
    watched = Watched(browser)
    page = watched.open(f"{site}/p/{slug}/")
    page.get_by_label(IMG_PAYLOAD, exact=True).check()
    page.get_by_role("button", name="Vote").click()
    page.wait_for_selector("text=Thanks, your vote is in.")
    # The payload is on screen as text, in the swapped fragment too.
    assert page.locator("#results .bar-text", has_text=HTMX_PAYLOAD).count() == 1
    for url in (f"{site}/p/{slug}/results/", f"{site}/p/{slug}/live/", owner_url):
        watched.open(url, live=True)  # live: the WebSocket snapshot was swapped in
        assert watched.page.locator("#live-region .bar-text", has_text=IMG_PAYLOAD).count() == 1
    watched.page.wait_for_timeout(500)  # an `hx-trigger=load` or `onerror` would have fired by now
    watched.context.close()
    assert watched.dialogs == []
    assert watched.requests_to_payload_targets() == []
