"""A word cloud in real Chromium: created and voted on without JavaScript; the big screen draws it
live and keeps 100 terms of 40 characters on one screen (screenshots on request: WORDS_SCREENSHOTS=<dir>)."""

import os
import re

import pytest

from crowdtick.tests import processes
from web.tests.test_browser import site  # noqa: F401 - the running site, a fixture

pytestmark = pytest.mark.browser

QUESTION_200 = ("In one word or a short phrase, what should the committee look at first next year, " * 3)[:200]


def test_a_word_cloud_is_created_and_voted_on_without_javascript_and_drawn_live(site, chromium):  # noqa: F811
    from playwright.sync_api import expect

    shots = os.environ.get("WORDS_SCREENSHOTS")
    plain = chromium.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    page = plain.new_page()
    page.goto(f"{site}/")
    page.get_by_label("Question").fill("One word for this morning?")
    page.get_by_label("A word cloud (voters type a few words)").check()
    # Only the word cloud's part shows now, by CSS alone.
    assert page.locator("#choice-list").is_hidden() and page.locator(".scale-part").is_hidden()
    page.get_by_label("Words each voter may send").select_option("2")
    page.get_by_role("button", name="Create poll").click()
    slug = page.url.split("/")[4]

    kiosk = chromium.new_context(viewport={"width": 1920, "height": 1080}).new_page()
    kiosk.goto(f"{site}/p/{slug}/live/")
    kiosk.wait_for_selector(".live-indicator[data-state=live]")
    assert "No words yet" in kiosk.inner_text("#results")

    for words in (["Sleepy", "coffee"], ["sleepy", "Sunny"], ["SLEEPY"]):
        voter = chromium.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844}).new_page()
        voter.goto(f"{site}/p/{slug}/")
        for n, word in enumerate(words, start=1):
            voter.get_by_label(f"Word {n}").fill(word)
        if shots and words == ["SLEEPY"]:
            voter.screenshot(path=f"{shots}/words-vote-phone.png", full_page=True)
        voter.get_by_role("button", name="Vote").click()
        assert 'name="words"' not in voter.content()  # voted: the results instead of the form
        assert voter.locator(".cloud-term", has_text="Sleepy").count() == 1
        if shots and words == ["SLEEPY"]:
            voter.screenshot(path=f"{shots}/words-phone.png", full_page=True)
        voter.context.close()

    # The big screen follows over its socket: the most frequent term, in the largest type, in the middle.
    expect(kiosk.locator(".cloud-term")).to_have_count(3)
    terms = kiosk.locator(".cloud-term").all_inner_texts()
    assert terms[1] == "Sleepy" and sorted(terms) == ["Sleepy", "Sunny", "coffee"]
    sizes = kiosk.evaluate(
        "[...document.querySelectorAll('.cloud-term')].map(term => parseFloat(getComputedStyle(term).fontSize))"
    )
    assert sizes[1] == max(sizes) and sizes[1] > 1.5 * min(sizes)
    if shots:
        kiosk.screenshot(path=f"{shots}/words-kiosk-1920x1080.png")

    # The owner hides a term from the owner page (a plain form): the big screen drops it within a second.
    page.reload()
    page.get_by_role("button", name="Hide “coffee”").click()
    assert page.locator(".moderation-term.is-hidden", has_text="coffee").count() == 1
    expect(kiosk.locator(".cloud-term").filter(has_text=re.compile("^coffee$"))).to_have_count(0, timeout=1000)
    if shots:
        page.screenshot(path=f"{shots}/words-owner-phone.png", full_page=True)
    kiosk.context.close()


@pytest.mark.parametrize("viewport", [(1920, 1080), (1280, 720)])
def test_the_big_screen_keeps_100_terms_of_40_characters_and_a_200_character_question_in_view(
    site,  # noqa: F811
    chromium,
    viewport,
):
    slug, _ = processes.create_poll(site, question=QUESTION_200, kind="words", max_words=5, choices=[], dedupe="none")
    # The worst a cloud can hold: 100 terms of 40 characters; one far more frequent than the rest.
    terms = [f"term {n:03} " + "x" * 31 for n in range(100)]
    for start in range(0, 100, 5):
        processes.vote_on_the_form(site, slug, {"words": terms[start : start + 5]})
    for _ in range(30):
        processes.vote_on_the_form(site, slug, {"words": [terms[0]]})
    width, height = viewport
    page = chromium.new_context(viewport={"width": width, "height": height}).new_page()
    page.goto(f"{site}/p/{slug}/live/")
    seen = page.evaluate(
        """() => {
          const box = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
          return {
            scroll: [document.scrollingElement.scrollWidth, document.scrollingElement.scrollHeight],
            question: box(document.querySelector('.kiosk-question')),
            qr: box(document.querySelector('.kiosk-qr')),
            total: box(document.querySelector('#results-total')),
            cloud: box(document.querySelector('.cloud')),
            terms: [...document.querySelectorAll('.cloud-term')].map(box),
          };
        }"""
    )
    if os.environ.get("WORDS_SCREENSHOTS"):
        page.screenshot(path=f"{os.environ['WORDS_SCREENSHOTS']}/words-kiosk-100-terms-{width}x{height}.png")

    def inside(box, frame=(0, 0, width, height)):
        left, top, right, bottom = box
        return left >= frame[0] - 0.5 and top >= frame[1] - 0.5 and right <= frame[2] + 0.5 and bottom <= frame[3] + 0.5

    assert seen["scroll"][0] <= width and seen["scroll"][1] <= height, seen["scroll"]
    for name in ("question", "qr", "total", "cloud"):
        assert inside(seen[name]), (name, seen[name])
    # Every term drawn whole, none cut off by the cloud's edge.
    assert len(seen["terms"]) == 100
    assert all(inside(term, seen["cloud"]) for term in seen["terms"]), seen["terms"]
    page.context.close()
