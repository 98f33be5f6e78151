"""An event in real Chromium: a presenter, a phone with JavaScript and one without, and the big screen."""

import os
import re

import pytest
import requests

from crowdtick.tests import processes
from realtime.tests.test_browser import _embedded_env

pytestmark = pytest.mark.browser

QUESTION_200 = (
    "Which of these twenty proposals should the committee fund first this year, given the budget we have, "
    "the people we can hire and the deadlines the board set for the spring term? Pick one only, please!!"
)


def create_event(base_url: str, title: str, questions: list[tuple[str, list[str]]]) -> str:
    """Creates an event through its form; returns the console's path."""
    session = requests.Session()
    form = session.get(f"{base_url}/events/new/").text
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    text = "\n\n".join("\n".join([question, *choices]) for question, choices in questions)
    response = session.post(
        f"{base_url}/events/new/",
        data={"title": title, "questions": text, "csrfmiddlewaretoken": csrf},
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text[:500]
    return response.headers["Location"]


def control(base_url: str, console_path: str, action: str, **fields) -> None:
    """The presenter's action by its plain form (no browser needed)."""
    session = requests.Session()
    page = session.get(base_url + console_path).text
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = session.post(
        f"{base_url}{console_path}control/", data={"action": action, "csrfmiddlewaretoken": csrf, **fields}
    )
    assert response.status_code == 200, response.text[:300]


def _live(page) -> None:
    page.wait_for_selector("[data-live-indicator][data-state=live]", timeout=15_000)


@pytest.fixture
def server(tmp_path):
    env = _embedded_env(tmp_path)
    processes.migrate(env)
    running = processes.uvicorn(processes.free_port(), env, tmp_path / "uvicorn.log").start()
    yield running
    running.stop()


def test_a_presenter_runs_an_event_that_phones_follow_with_and_without_javascript(chromium, server):
    questions = [
        ("Tea or coffee?", ["Tea", "Coffee"]),
        ("Best talk?", ["Keynote", "Panel", "Demo"]),
        ("Again next year?", ["Yes", "No"]),
    ]
    console_path = create_event(server.url, "All-hands", questions)
    code = console_path.split("/")[2]
    shots = os.environ.get("EVENT_SCREENSHOTS")  # to look at them: EVENT_SCREENSHOTS=<dir>

    presenter = chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()
    presenter.goto(server.url + console_path)
    _live(presenter)
    # Phone A joins with the code from the landing page, with JavaScript.
    phone = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True).new_page()
    phone.goto(f"{server.url}/")
    phone.get_by_label("Code on the big screen").fill(f"{code[:3]} {code[3:]}")
    phone.get_by_role("button", name="Join").click()
    phone.wait_for_url(f"**/e/{code}/")
    _live(phone)
    phone.wait_for_selector("text=Waiting for the presenter")
    # Phone B has no JavaScript: it follows on reload.
    plain = chromium.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844}).new_page()
    plain.goto(f"{server.url}/join/?code={code}")
    assert "Waiting for the presenter" in plain.content()

    # The presenter shows question 1 and opens it with a 20 s window, by keyboard and by the form.
    presenter.keyboard.press("ArrowRight")
    presenter.wait_for_selector("text=Shown, not open")
    presenter.fill("input[name=seconds]", "20")
    presenter.get_by_role("button", name="Open voting").click()
    presenter.wait_for_selector("text=Voting open")
    # The phone with JavaScript holds a socket: the console counts it (within its 5 s refresh).
    presenter.wait_for_selector("#event-phones:has-text('1 phone connected')", timeout=15_000)

    # Phone A switches to the open question without a reload, and votes.
    phone.wait_for_selector("text=Tea or coffee?")
    phone.wait_for_selector("input[name=choice]")
    phone.wait_for_selector("[data-countdown]:not([hidden])")
    phone.get_by_label("Coffee").check()
    phone.get_by_role("button", name="Vote").click()
    phone.wait_for_selector("text=Your answer is in.")
    # Phone B reloads, and votes with a plain form.
    plain.reload()
    plain.get_by_label("Tea").check()
    plain.get_by_role("button", name="Vote").click()
    assert "Your answer is in." in plain.content()
    presenter.wait_for_selector("#results-total:text('2')")  # the presenter sees results live

    # Reveal: phone A shows the results with its own pick marked, without a reload.
    presenter.keyboard.press("r")
    phone.wait_for_selector("#results")
    mine = phone.evaluate("getComputedStyle(document.querySelector('[data-pick=p1] .bar-text'), '::after').content")
    assert "your choice" in mine
    plain.reload()
    assert 'data-mine="p0"' in plain.content() and 'id="results"' in plain.content()
    if shots:
        presenter.screenshot(path=f"{shots}/event-console.png", full_page=True)
        phone.screenshot(path=f"{shots}/event-phone-revealed.png", full_page=True)

    # Next: phone A switches without a reload; phone B on reload.
    presenter.keyboard.press("ArrowRight")
    phone.wait_for_selector("text=Best talk?")
    assert "Tea or coffee?" in plain.content()
    plain.reload()
    assert "Best talk?" in plain.content()

    # A 5 s window: when it ends, voting closes on every screen.
    control(server.url, console_path, "open", seconds="5")
    phone.wait_for_selector("input[name=choice]")
    plain.reload()
    assert 'name="choice"' in plain.content()
    phone.wait_for_selector("text=Voting is closed for this question.", timeout=12_000)
    assert phone.locator("input[name=choice]").count() == 0
    plain.get_by_label("Panel").check()
    plain.get_by_role("button", name="Vote").click()  # the form it loaded while open
    assert "not open" in plain.content()
    presenter.wait_for_selector("text=Voting closed")


@pytest.mark.parametrize("viewport", [(1920, 1080), (1280, 720)])
@pytest.mark.parametrize("revealed", [False, True], ids=["hidden", "revealed"])
def test_the_events_big_screen_fits_with_20_choices_and_a_200_character_question(
    chromium, server, viewport, revealed
):
    choices = [f"Proposal {n}: a longer name for the idea" for n in range(1, 21)]
    console_path = create_event(server.url, "Committee", [(QUESTION_200, choices)])
    code = console_path.split("/")[2]
    control(server.url, console_path, "next")
    control(server.url, console_path, "open", seconds="600")
    if revealed:
        control(server.url, console_path, "reveal")
    width, height = viewport
    page = chromium.new_context(viewport={"width": width, "height": height}).new_page()
    page.goto(f"{server.url}/e/{code}/live/")
    _live(page)
    page.wait_for_selector("#results .bar" if revealed else ".event-choices li")
    seen = page.evaluate(
        """() => {
          const box = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
          const one = (selector) => box(document.querySelector(selector));
          return {
            scroll: [document.scrollingElement.scrollWidth, document.scrollingElement.scrollHeight],
            question: one('.kiosk-question'), code: one('.event-join-code'), link: one('.kiosk-link'),
            qr: one('.kiosk-qr'), countdown: one('[data-countdown]'),
            total: document.querySelector('#results-total') ? one('#results-total') : null,
            choices: [...document.querySelectorAll('#results .bar, .event-choices li')].map(box),
          };
        }"""
    )
    if os.environ.get("EVENT_SCREENSHOTS"):
        name = f"event-screen-{'revealed' if revealed else 'hidden'}-{width}x{height}.png"
        page.screenshot(path=f"{os.environ['EVENT_SCREENSHOTS']}/{name}")

    def inside(box):
        left, top, right, bottom = box
        return left >= 0 and top >= 0 and right <= width + 0.5 and bottom <= height + 0.5 and bottom > top

    assert seen["scroll"][0] <= width and seen["scroll"][1] <= height, seen["scroll"]
    for name in ("question", "code", "link", "qr", "countdown", *(["total"] if revealed else [])):
        assert inside(seen[name]), (name, seen[name])
    assert len(seen["choices"]) == 20 and all(inside(choice) for choice in seen["choices"]), seen["choices"]
    assert "Closes in" in page.inner_text("[data-countdown]") and code[:3] in page.inner_text(".event-join-code")
    page.context.close()
