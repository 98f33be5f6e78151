"""A rating scale in real Chromium without JavaScript: the kind picker, the form, a vote; and with it,
the big screen's average in large type (screenshots on request: SCALE_SCREENSHOTS=<dir>)."""

import os

import pytest

from web.tests.test_browser import site  # noqa: F401 - the running site, a fixture

pytestmark = pytest.mark.browser


def test_a_scale_is_created_and_rated_without_javascript_and_its_average_fills_the_big_screen(site, chromium):  # noqa: F811
    shots = os.environ.get("SCALE_SCREENSHOTS")
    plain = chromium.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    page = plain.new_page()
    page.goto(f"{site}/")
    page.get_by_label("Question").fill("How useful was this talk?")
    page.get_by_label("A rating scale (e.g. 1 to 5)").check()
    # Only the scale's part shows now, by CSS alone.
    assert page.locator("#choice-list").is_hidden() and page.get_by_label("Label of the low end").is_visible()
    page.get_by_label("From", exact=True).fill("0")
    page.get_by_label("to", exact=True).fill("10")
    page.get_by_label("Label of the low end").fill("Not at all")
    page.get_by_label("Label of the high end").fill("Very")
    page.get_by_role("button", name="Create poll").click()
    slug = page.url.split("/")[4]

    for value in ("7", "9"):
        voter = chromium.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844}).new_page()
        voter.goto(f"{site}/p/{slug}/")
        assert "0: Not at all" in voter.content() and "10: Very" in voter.content()
        voter.locator(".scale-option", has_text=value).click()
        voter.get_by_role("button", name="Vote").click()
        assert 'id="scale-average"' in voter.content() and 'name="choice"' not in voter.content()  # voted: results
        if shots and value == "9":
            voter.screenshot(path=f"{shots}/scale-phone.png", full_page=True)
        voter.context.close()

    kiosk = chromium.new_context(viewport={"width": 1920, "height": 1080}).new_page()
    kiosk.goto(f"{site}/p/{slug}/live/")
    kiosk.wait_for_selector("#scale-average")
    assert kiosk.inner_text("#scale-average") == "8"
    size = kiosk.evaluate("parseFloat(getComputedStyle(document.querySelector('#scale-average')).fontSize)")
    assert size >= 0.06 * 1080  # large type: readable from the back of a hall
    if shots:
        kiosk.screenshot(path=f"{shots}/scale-kiosk-1920x1080.png")
