"""What a first-time voter and owner see, in real Chromium (issue 19): copy buttons, the owner page.

The site runs as `make run` runs it (uvicorn, embedded defaults) on a temporary SQLite database.
"""

import json
import os
import urllib.request

import pytest

from crowdtick.tests import processes

pytestmark = pytest.mark.browser

# This suite's own ports, apart from test_browser.py's 8240-8259.
PORTS = range(8340, 8360)
# A LAN name over plain HTTP: not a secure context, so the browser offers no navigator.clipboard there.
LAN_HOST = "crowdtick.test"


@pytest.fixture
def site(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "REDIS_SHARD_URLS", "DEBUG")}
    env |= {
        "SECRET_KEY": "browser-test-secret",
        "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        "ALLOWED_HOSTS": f"127.0.0.1,localhost,{LAN_HOST}",
    }
    processes.migrate(env)
    server = processes.uvicorn(processes.free_port(PORTS), env, tmp_path / "uvicorn.log").start()
    yield server.url
    server.stop()


@pytest.fixture
def lan_chromium():
    """Chromium that resolves LAN_HOST to this machine."""
    processes.require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=processes.CHROMIUM,
            headless=True,
            args=processes.CHROMIUM_ARGS + [f"--host-resolver-rules=MAP {LAN_HOST} 127.0.0.1"],
        )
        yield browser
        browser.close()


def create_poll(site: str) -> dict:
    request = urllib.request.Request(
        f"{site}/api/polls/",
        data=json.dumps({"question": "Best fruit?", "choices": ["Apple", "Pear"]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    return json.loads(urllib.request.urlopen(request).read())


def test_copy_buttons_show_only_where_they_can_copy(site, lan_chromium):
    from playwright.sync_api import expect

    created = create_poll(site)
    results = f"/p/{created['id']}/results/"

    # Without JavaScript the button could do nothing: it is not shown, and the link is there to select.
    no_script = lan_chromium.new_context(java_script_enabled=False)
    page = no_script.new_page()
    page.goto(site + results)
    expect(page.get_by_label("Short link")).to_be_visible()
    expect(page.get_by_role("button", name="Copy")).to_be_hidden()
    no_script.close()

    # A LAN name over HTTP is no secure context: the browser has no clipboard for the page to write to.
    lan = lan_chromium.new_context()
    page = lan.new_page()
    page.goto(site.replace("127.0.0.1", LAN_HOST) + results)
    assert page.evaluate("!window.isSecureContext && !navigator.clipboard")
    expect(page.get_by_label("Short link")).to_be_visible()
    expect(page.get_by_role("button", name="Copy")).to_be_hidden()
    lan.close()

    # On a secure origin (this machine counts as one) it shows, and copies.
    secure = lan_chromium.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = secure.new_page()
    page.goto(site + results)
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == page.get_by_label("Short link").input_value()
    secure.close()


@pytest.mark.parametrize("width", [390, 1280])
def test_the_owner_page_shows_the_whole_short_link_and_opens_the_big_screen_in_a_new_tab(site, chromium, width):
    from playwright.sync_api import expect

    created = create_poll(site)
    context = chromium.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(created["manage_url"])
    short_link = page.get_by_label("Short link")
    expect(short_link).to_have_value(f"{site}/p/{created['id']}/")
    # Nothing of the link is scrolled out of its box.
    overflow = "box => [box.scrollWidth - box.clientWidth, box.scrollHeight - box.clientHeight]"
    assert short_link.evaluate(overflow) == [0, 0]

    with context.expect_page() as opened:
        page.get_by_role("link", name="Open the big-screen view (opens in a new tab)").click()
    assert opened.value.url == f"{site}/p/{created['id']}/live/"
    assert page.url == created["manage_url"]  # the owner page stays where it was
    context.close()
