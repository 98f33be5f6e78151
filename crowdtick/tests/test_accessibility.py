"""Every page, in real Chromium, checked by axe-core (vendored under tests/vendor) and by hand where
axe cannot judge: the focus ring's contrast, and how results reach a screen reader."""

import json
import os
import urllib.request
from pathlib import Path

import pytest

from crowdtick.tests import processes
from web.tests.test_browser import contrast, over, rgba

pytestmark = pytest.mark.browser

PORTS = range(8340, 8360)  # apart from web/tests/test_browser.py's 8240-8259
AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()



def post_json(url: str, body: dict, **headers) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **headers}
    )
    return json.loads(urllib.request.urlopen(request).read())


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("a11y")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "REDIS_SHARD_URLS", "DEBUG")}
    env |= {"SECRET_KEY": "browser-test-secret", "SQLITE_PATH": str(tmp_path / "db.sqlite3")}
    processes.migrate(env)
    server = processes.uvicorn(processes.free_port(PORTS), env, tmp_path / "uvicorn.log").start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def pages(site) -> dict[str, str]:
    """Every page a person can land on, by name."""
    poll = post_json(f"{site}/api/polls/", {"question": "Tea or coffee?", "choices": ["Tea", "Coffee"]})
    post_json(f"{site}/api/votes/", {"poll": poll["id"], "choices": [poll["choices"][0]["id"]], "voter": "v1"})
    event = post_json(
        f"{site}/api/events/",
        {"title": "All-hands", "questions": [{"question": "Lunch?", "choices": ["Noodles", "Tacos"]}]},
    )
    token = event["manage_url"].rstrip("/").rsplit("/", 1)[1]
    post_json(f"{site}/api/events/{event['id']}/control/", {"action": "next"}, Authorization=f"Bearer {token}")
    post_json(f"{site}/api/events/{event['id']}/control/", {"action": "open"}, Authorization=f"Bearer {token}")
    # A word cloud and a rating, voted on through their forms (their pages differ from a poll of choices').
    cloud, cloud_owner = processes.create_poll(site, question="One word?", kind="words", choices=[], max_words=2)
    processes.vote_on_the_form(site, cloud, {"words": ["Coffee", "calm"]})
    rating, _ = processes.create_poll(site, question="How was it?", kind="scale", choices=[], scale_min=1, scale_max=5)
    return {
        "landing": "/",
        "word cloud vote form": f"/p/{cloud}/",
        "word cloud results": f"/p/{cloud}/results/",
        "word cloud kiosk": f"/p/{cloud}/live/",
        "word cloud owner page": cloud_owner,
        "rating vote form": f"/p/{rating}/",
        "poll": f"/p/{poll['id']}/",
        "results": f"/p/{poll['id']}/results/",
        "live kiosk": f"/p/{poll['id']}/live/",
        "overlay": f"/p/{poll['id']}/live/?overlay=1",
        "owner page": poll["manage_url"].removeprefix(site),
        "delete confirmation": poll["manage_url"].removeprefix(site) + "delete/",
        "event create form": "/events/new/",
        "event phone": f"/e/{event['id']}/",
        "event big screen": f"/e/{event['id']}/live/",
        "presenter console": event["manage_url"].removeprefix(site),
        "join page": "/join/",
        "API docs": "/api/docs/",
    }


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_page_has_a_serious_or_critical_axe_violation(site, pages, chromium, scheme):
    context = chromium.new_context(color_scheme=scheme, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    found = {}
    for name, path in pages.items():
        page.goto(site + path)
        page.wait_for_load_state("networkidle")
        page.evaluate(AXE)  # through the DevTools protocol: the site's CSP forbids inline scripts, rightly
        results = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        serious = [
            f"{violation['id']} ({violation['impact']}): {[node['target'] for node in violation['nodes']][:3]}"
            for violation in results["violations"]
            if violation["impact"] in ("serious", "critical")
        ]
        if serious:
            found[name] = serious
    context.close()
    assert found == {}


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_focus_ring_stands_out_3_to_1_from_what_it_is_drawn_on(site, pages, chromium, scheme):
    context = chromium.new_context(color_scheme=scheme)
    page = context.new_page()
    page.goto(site + pages["results"])
    page.get_by_label("Short link").focus()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")  # by keyboard, so :focus-visible applies
    seen = page.evaluate("""() => {
      const el = document.activeElement;
      const backdrop = [document.body, el.closest('.card')].map((box) => getComputedStyle(box).backgroundColor);
      return {ring: getComputedStyle(el).outlineColor, style: getComputedStyle(el).outlineStyle, backdrop};
    }""")
    context.close()
    assert seen["style"] == "solid"
    for backdrop in seen["backdrop"]:
        behind = rgba(backdrop)[:3]
        assert contrast(over(seen["ring"], behind), behind) >= 3, (scheme, seen)


def test_new_results_are_announced_from_a_polite_live_region_that_was_there_before_them(site, pages, chromium):
    from playwright.sync_api import expect

    # A screen reader announces changes inside a live region it already knows: a region that arrives
    # with the new content (as a replaced #results would) is new to it, and stays silent.
    context = chromium.new_context()
    page = context.new_page()
    page.goto(site + pages["results"])
    page.wait_for_selector("[data-live-indicator][data-state=live]")
    total = page.locator("#results-total")
    before = int(total.text_content())
    page.evaluate("document.querySelectorAll('[aria-live]').forEach((region) => { region.dataset.seen = 'yes'; })")
    poll_id = pages["results"].split("/")[2]
    choice = int(page.locator(".bar-fill").first.get_attribute("id").removeprefix("bar-"))
    post_json(f"{site}/api/votes/", {"poll": poll_id, "choices": [choice], "voter": "announced"})
    expect(total).to_have_text(str(before + 1))
    regions = page.evaluate("""() => {
      const regions = [];
      for (let node = document.querySelector('#results-total'); node; node = node.parentElement) {
        if (node.hasAttribute('aria-live')) {
          regions.push([node.id, node.getAttribute('aria-live'), !!node.dataset.seen]);
        }
      }
      return regions;
    }""")
    context.close()
    assert any(live == "polite" and seen_before for _, live, seen_before in regions), regions
