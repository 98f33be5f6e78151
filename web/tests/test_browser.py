"""The whole site once in real Chromium: create a poll, vote from two browsers, refuse a third vote.

The site runs as `make run` runs it (uvicorn, embedded defaults) on a temporary SQLite database.
"""

import io
import os
import re

import pytest
import zxingcpp
from PIL import Image

from crowdtick.tests import processes

pytestmark = pytest.mark.browser

# This suite's own ports, so parallel work on the machine never collides with it.
PORTS = range(8240, 8260)


@pytest.fixture
def site(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "REDIS_SHARD_URLS", "DEBUG")}
    env |= {"SECRET_KEY": "browser-test-secret", "SQLITE_PATH": str(tmp_path / "db.sqlite3")}
    processes.migrate(env)
    server = processes.uvicorn(processes.free_port(PORTS), env, tmp_path / "uvicorn.log").start()
    yield server.url
    server.stop()


def test_a_poll_is_created_voted_on_from_two_browsers_and_a_repeat_vote_is_refused(site, chromium):
    from playwright.sync_api import expect

    owner = chromium.new_context(viewport={"width": 390, "height": 844}, timezone_id="America/New_York")
    guest = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = owner.new_page()

    # The owner creates a poll through the form, adding a third choice with HTMX.
    page.goto(f"{site}/")
    page.get_by_label("Question").fill("Which talk opens the day?")
    rows = page.locator("#choice-list input")
    page.get_by_label("Choice 1", exact=True).fill("Databases")
    page.get_by_label("Choice 2", exact=True).fill("Browsers")
    page.get_by_role("button", name="+ Add a choice").click()
    expect(rows).to_have_count(4)
    expect(page.get_by_label("Choice 4", exact=True)).to_be_focused()
    rows.nth(3).fill("Compilers")
    page.get_by_text("Options").click()
    # The maximum of picks shows only while multiple choice is ticked, and a value left in it then is not sent.
    expect(page.get_by_label("At most this many picks")).to_be_hidden()
    page.get_by_label("Voters may pick more than one").check()
    page.get_by_label("At most this many picks").fill("99")
    page.get_by_label("Voters may pick more than one").uncheck()
    expect(page.get_by_label("At most this many picks")).to_be_hidden()
    expect(page.get_by_text("time in America/New York").first).to_be_visible()
    page.get_by_label("Closes at").fill("2099-06-01T12:00")  # the owner's wall clock: 16:00 UTC
    page.get_by_role("button", name="Create poll").click()
    expect(page.get_by_text("Your poll is ready.")).to_be_visible()
    slug = re.search(r"/p/(\w+)/manage/", page.url)[1]
    poll_url = f"{site}/p/{slug}/"
    expect(page.locator("#owner-url")).to_have_value(re.compile(r"/manage/"))
    expect(page.locator(".poll-status time")).to_have_attribute("datetime", "2099-06-01T16:00:00+00:00")
    expect(page.get_by_label("Deadline")).to_have_value("2099-06-01T12:00")  # shown back in local time
    expect(page.get_by_text("No votes yet.")).to_be_visible()
    manage_url = page.url.split("?")[0]

    # A guest votes from another browser with the keyboard alone; HTMX swaps the results in place.
    guest_page = guest.new_page()
    guest_page.goto(poll_url)
    for text in ("Databases", "Browsers", "Compilers"):  # each option is named by its own text
        expect(guest_page.get_by_role("radio", name=text, exact=True)).to_have_count(1)
    guest_page.get_by_label("Databases").focus()
    guest_page.keyboard.press("ArrowDown")  # radios move by arrow keys; the focus ring follows
    expect(guest_page.get_by_label("Browsers")).to_be_checked()
    focused_option = guest_page.locator(".vote-option", has=guest_page.get_by_label("Browsers"))
    assert focused_option.evaluate("label => getComputedStyle(label).outlineStyle") == "solid"
    guest_page.keyboard.press("Enter")
    expect(guest_page.get_by_text("Thanks, your vote is in.")).to_be_visible()
    expect(guest_page.locator("#results-total")).to_have_text("1")
    assert guest_page.url == poll_url  # swapped in place, no navigation

    # The owner has the poll open in two tabs, and votes in the first.
    first_tab, second_tab = owner.new_page(), owner.new_page()
    first_tab.goto(poll_url)
    second_tab.goto(poll_url)
    first_tab.get_by_label("Databases").check()
    first_tab.get_by_role("button", name="Vote").click()
    expect(first_tab.locator("#results-total")).to_have_text("2")
    bars = first_tab.locator(".bar")
    expect(bars.nth(0)).to_contain_text("50% · 1 vote")
    expect(bars.nth(1)).to_contain_text("50% · 1 vote")

    # A third vote from the owner's browser (the stale tab) is refused politely and not counted.
    second_tab.get_by_label("Compilers").check()
    second_tab.get_by_role("button", name="Vote").click()
    expect(second_tab.get_by_role("alert")).to_contain_text("You have already voted in this poll")
    expect(second_tab.locator("#results-total")).to_have_text("2")
    guest_page.goto(f"{site}/p/{slug}/results/")
    expect(guest_page.locator("#results-total")).to_have_text("2")
    expect(guest_page.locator(".bar").nth(2)).to_contain_text("0% · 0 votes")

    # The owner's chart draws the busiest minute as the tallest bar, and says so in text. The two votes
    # may fall either side of a minute's turn: then two bars share the top, and the table has two rows.
    page.goto(manage_url)
    expect(page.locator("#vote-chart")).to_contain_text("2 votes in the last hour")
    assert page.locator('.minute-fill[height="100"]').first.bounding_box()["height"] > 50
    minute_votes = page.locator("#vote-chart").get_by_role("table").locator("tbody td").all_inner_texts()
    assert sum(int(text.split()[0]) for text in minute_votes) == 2

    # The share box's QR code is drawn and scans as the poll's link.
    qr = guest_page.locator("img.share-qr")
    expect(qr).to_be_visible()
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0")
    (scanned,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(qr.screenshot())))
    assert scanned.text == poll_url

    owner.close()
    guest.close()


def test_on_a_phone_the_owner_voids_a_flagged_burst_with_the_keyboard(site, chromium, tmp_path):
    import json
    import sqlite3
    import urllib.request
    from datetime import UTC, datetime, timedelta

    from playwright.sync_api import expect

    request = urllib.request.Request(
        f"{site}/api/polls/",
        data=json.dumps({"question": "Best fruit?", "choices": ["Apple", "Pear"]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    created = json.loads(urllib.request.urlopen(request).read())
    # Every browser here is 127.0.0.1: the crowd and the script are written into the record instead,
    # 30 networks with a ballot each and one network with 120 in one minute.
    minute = (datetime.now(UTC) - timedelta(minutes=5)).replace(second=0, microsecond=0, tzinfo=None)
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        (poll_id,) = db.execute("SELECT id FROM polls_poll WHERE slug = ?", [created["id"]]).fetchone()
        rows = [(poll_id, f"crowd-{n}", f"{n:064x}", 1, f"{minute + timedelta(seconds=n)}") for n in range(30)]
        rows += [(poll_id, f"script-{n}", "f" * 64, 2, f"{minute + timedelta(seconds=20)}") for n in range(120)]
        db.executemany(
            "INSERT INTO polls_ballot (poll_id, voter_key, ip_hash, ip_key, choice_mask, submitted_at)"
            " VALUES (?, ?, ?, NULL, ?, ?)",
            rows,
        )

    phone = chromium.new_context(viewport={"width": 390, "height": 844})
    page = phone.new_page()
    page.goto(created["manage_url"])
    audit = page.locator("#ballot-audit")
    expect(audit).to_contain_text("150 counted ballots from 31 networks")
    expect(audit).to_contain_text("120 ballots from network ffffffffff")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "wider than the phone"
    void = page.get_by_role("button", name="Void these 120 ballots")
    void.focus()
    page.keyboard.press("Enter")  # HTMX swaps the card
    expect(audit).to_contain_text("120 ballots voided")
    expect(audit).to_contain_text("No burst")
    expect(audit).to_contain_text("30 counted ballots")
    page.goto(f"{site}/p/{created['id']}/results/")
    expect(page.locator("#results-total")).to_have_text("30")
    phone.close()


# The overlay's strip (the panel, #main), what it must show, and the page behind it.
_OVERLAY = """() => {
  const box = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const strip = document.querySelector('#main');
  const parts = ['.kiosk-question', '.kiosk-link', '.kiosk-qr', '#results-total', '#results .bar'];
  const texts = '.kiosk-question, .kiosk-cta, .kiosk-link, .bar-text, .bar-count, .bar-count strong, .results-total';
  return {
    scroll: [document.scrollingElement.scrollWidth, document.scrollingElement.scrollHeight],
    strip: box(strip),
    parts: parts.flatMap((name) => [...strip.querySelectorAll(name)].map((el) => [name, box(el)])),
    page: [document.documentElement, document.body].map((el) => getComputedStyle(el).backgroundColor),
    panel: getComputedStyle(strip).backgroundColor,
    texts: [...new Set([...strip.querySelectorAll(texts)].map((el) => getComputedStyle(el).color))],
  };
}"""


def rgba(css: str) -> tuple[float, float, float, float]:
    r, g, b, *a = (float(n) for n in re.findall(r"[\d.]+", css))
    return r, g, b, a[0] if a else 1.0


def over(color: str, backdrop: tuple[float, float, float]) -> tuple[float, float, float]:
    *rgb, alpha = rgba(color)
    return tuple(alpha * c + (1 - alpha) * b for c, b in zip(rgb, backdrop, strict=True))


def contrast(first: tuple[float, ...], second: tuple[float, ...]) -> float:
    def luminance(rgb):
        linear = [c / 255 / 12.92 if c <= 10.31 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb[:3]]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@pytest.mark.parametrize("viewport", [(1920, 1080), (1280, 720)])
def test_the_stream_overlay_is_a_legible_lower_third_strip_on_a_transparent_page(site, chromium, viewport):
    import json
    import urllib.request

    from playwright.sync_api import expect

    question = (
        "Which of these twenty proposals should the committee fund first this year, given the budget we have, "
        "the people we can hire and the deadlines the board set for the spring term? Pick one only, please!!"
    )
    choices = [f"Proposal {n}: a longer name for the idea, with a tail that runs on" for n in range(1, 21)]
    request = urllib.request.Request(
        f"{site}/api/polls/",
        data=json.dumps({"question": question, "choices": choices}).encode(),
        headers={"Content-Type": "application/json"},
    )
    created = json.loads(urllib.request.urlopen(request).read())
    width, height = viewport
    context = chromium.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    for theme in ("dark", "light"):
        page.goto(f"{site}/p/{created['id']}/live/?overlay=1&theme={theme}")
        page.wait_for_selector("[data-live-indicator][data-state=live]")
        seen = page.evaluate(_OVERLAY)

        assert seen["scroll"][0] <= width and seen["scroll"][1] <= height, seen["scroll"]  # nothing scrolls
        left, top, right, bottom = seen["strip"]
        assert top >= height * 2 / 3 and bottom <= height and left >= 0 and right <= width, (theme, seen["strip"])
        for name, (part_left, part_top, part_right, part_bottom) in seen["parts"]:
            assert left <= part_left and top <= part_top and part_right <= right and part_bottom <= bottom, name
        assert [name for name, _ in seen["parts"]].count("#results .bar") == 20
        # The video shows through everywhere but the panel, and the panel keeps text readable over any picture.
        assert seen["page"] == ["rgba(0, 0, 0, 0)", "rgba(0, 0, 0, 0)"], seen["page"]
        assert rgba(seen["panel"])[3] > 0, seen["panel"]
        for video in ((255, 255, 255), (0, 0, 0)):
            panel = over(seen["panel"], video)
            for text in seen["texts"]:
                assert contrast(over(text, panel), panel) >= 4.5, (theme, video, text, seen["panel"])
        if os.environ.get("OVERLAY_SCREENSHOTS"):  # to look at it: OVERLAY_SCREENSHOTS=<dir>, transparent PNGs
            shot = f"{os.environ['OVERLAY_SCREENSHOTS']}/overlay-{theme}-{width}x{height}.png"
            page.screenshot(path=shot, omit_background=True)

    # The overlay stays live: a vote reaches it over its WebSocket.
    vote = urllib.request.Request(
        f"{site}/api/votes/",
        data=json.dumps({"poll": created["id"], "choices": [created["choices"][3]["id"]], "voter": "v1"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(vote)
    expect(page.locator("#results-total")).to_have_text("1")
    expect(page.locator("#results .bar").nth(3)).to_contain_text("100%")
    context.close()
