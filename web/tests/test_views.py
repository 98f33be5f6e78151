"""Every HTML path through the test client, each with and without the `HX-Request` header."""

import csv
import io
import os
import re
from datetime import timedelta
from xml.etree import ElementTree

import pytest
import zxingcpp
from django.test import Client
from django.utils import timezone
from kombu.exceptions import OperationalError
from PIL import Image, ImageDraw

from crowdtick.tests.security_helpers import csp_directives
from polls import selectors, tasks
from polls.models import Ballot, Poll
from web.forms import DEDUPE_HELP
from web.tests.conftest import HTMX

pytestmark = pytest.mark.django_db

HTMX_CASES = pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])


def create_form(**fields) -> dict:
    data = {
        "question": "Where do we eat?",
        "choices": ["Noodles", "Tacos", "Salad"],
        "results_visibility": "always",
        "dedupe": "browser",
    }
    return data | fields


def vote(client: Client, poll, *choice_ids, headers=None):
    return client.post(poll.url("vote/"), {"choice": [str(i) for i in choice_ids]}, **(headers or {}))


def total_ballots(poll) -> int:
    return Ballot.objects.filter(poll_id=poll.poll.id).count()


# --- landing and create --------------------------------------------------------------------


@HTMX_CASES
def test_the_landing_page_shows_the_create_form(client, db, headers):
    response = client.get("/", **headers)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<form class="card create-form" method="post" action="/polls/new/"' in html
    assert html.count('name="choices"') == 3
    assert '<label for="id_question">Question</label>' in html


def test_the_create_form_says_what_each_duplicate_protection_can_and_cannot_stop(client, db):
    html = client.get("/").content.decode()
    labels = dict(
        re.findall(
            r'<label class="radio[^"]*"><input type="radio" name="dedupe" value="(\w+)"[^>]*>(.*?)</label>', html
        )
    )
    assert set(labels) == {"browser", "ip", "none"}
    assert "clears their cookies" in labels["browser"] and "another browser can vote again" in labels["browser"]
    assert "sharing Wi-Fi" in labels["ip"] and "only once between them" in labels["ip"]
    assert "Every submission counts" in labels["none"]
    # One home for the words: the create form and the owner page both show DEDUPE_HELP.
    assert all(DEDUPE_HELP[value] in label for value, label in labels.items())


def test_the_owner_page_says_what_its_polls_duplicate_protection_can_and_cannot_stop(client, make_poll):
    poll = make_poll(dedupe="ip")
    html = client.get(poll.manage_url()).content.decode()
    assert (
        f"<strong>Duplicate protection:</strong> One vote per browser and per network address. {DEDUPE_HELP['ip']}"
        in html
    )


@HTMX_CASES
def test_creating_a_poll_redirects_to_the_owner_page_which_shows_the_owner_link_once(client, db, headers):
    response = client.post("/polls/new/", create_form(), **headers)
    assert response.status_code == 302
    location = response["Location"]
    # The address is the one to bookmark: nothing in it brings the banner back.
    match = re.fullmatch(r"/p/(\w+)/manage/([\w-]+)/", location)
    assert match, location
    poll = Poll.objects.get(slug=match[1])
    assert poll.question == "Where do we eat?"
    assert [c.text for c in poll.choices.all()] == ["Noodles", "Tacos", "Salad"]

    first_visit = client.get(location).content.decode()
    assert "Your poll is ready" in first_visit
    assert f"http://testserver/p/{poll.slug}/manage/{match[2]}/" in first_visit
    later_visit = client.get(location).content.decode()  # the bookmark, opened again
    assert "Your poll is ready" not in later_visit
    assert 'id="owner-url"' not in later_visit
    assert "Your poll is ready" not in Client().get(location).content.decode()  # nor from another browser


def test_creating_a_multiple_choice_poll_with_a_maximum(client, db):
    response = client.post("/polls/new/", create_form(allow_multiple="on", max_choices="2"))
    poll = Poll.objects.get(slug=response["Location"].split("/")[2])
    assert poll.max_choices == 2


def test_multiple_choice_without_a_maximum_allows_every_choice(client, db):
    response = client.post("/polls/new/", create_form(allow_multiple="on"))
    assert Poll.objects.get(slug=response["Location"].split("/")[2]).max_choices == 3


def test_a_maximum_is_ignored_when_multiple_choice_is_off(client, db):
    response = client.post("/polls/new/", create_form(max_choices="3"))
    assert Poll.objects.get(slug=response["Location"].split("/")[2]).max_choices == 1


@pytest.mark.parametrize("max_choices", ["50", "two", "0"])
def test_a_maximum_left_in_the_hidden_field_does_not_block_a_single_choice_poll(client, db, max_choices):
    response = client.post("/polls/new/", create_form(max_choices=max_choices))
    assert response.status_code == 302
    assert Poll.objects.get(slug=response["Location"].split("/")[2]).max_choices == 1


@HTMX_CASES
def test_each_choice_row_of_the_create_form_has_its_own_label(client, db, headers):
    html = client.get("/", **headers).content.decode()
    assert re.findall(r'aria-label="(Choice[^"]*)"', html) == ["Choice 1", "Choice 2", "Choice 3"]
    again = client.post("/polls/new/", create_form(add_choice="1"), **headers).content.decode()
    assert re.findall(r'aria-label="(Choice[^"]*)"', again) == ["Choice 1", "Choice 2", "Choice 3", "Choice 4"]


def test_a_deadline_is_read_in_the_browsers_time_zone(client, db):
    response = client.post("/polls/new/", create_form(closes_at="2099-06-01T12:00", tz="Europe/Paris"))
    poll = Poll.objects.get(slug=response["Location"].split("/")[2])
    assert poll.closes_at.isoformat() == "2099-06-01T10:00:00+00:00"


def test_a_deadline_without_a_time_zone_is_read_as_utc(client, db):
    response = client.post("/polls/new/", create_form(closes_at="2099-06-01T12:00", tz="Not/AZone"))
    poll = Poll.objects.get(slug=response["Location"].split("/")[2])
    assert poll.closes_at.isoformat() == "2099-06-01T12:00:00+00:00"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"question": ""}, "This field is required."),
        ({"question": "x" * 201}, "at most 200 characters"),
        ({"question": "Nul\x00byte?"}, "Null characters are not allowed."),
        ({"description": "x" * 1001}, "at most 1000 characters"),
        ({"choices": ["Only one"]}, "Give at least 2 choices."),
        ({"choices": []}, "Give at least 2 choices."),
        ({"choices": [f"Choice {i}" for i in range(21)]}, "at most 20 choices"),
        ({"choices": ["Tacos", "tacos"]}, "Each choice must be different."),
        ({"choices": ["Tacos", "x" * 121]}, "at most 120 characters"),
        ({"choices": ["Tacos", "Nul\x00"]}, "cannot contain NUL characters"),
        ({"allow_multiple": "on", "max_choices": "21"}, "less than or equal to 20"),
        ({"allow_multiple": "on", "max_choices": "5"}, "between 1 and 3"),
        ({"allow_multiple": "on", "max_choices": "two"}, "Enter a whole number."),
        ({"closes_at": "2001-01-01T10:00"}, "The deadline must be in the future."),
        ({"closes_at": "next tuesday"}, "Enter a valid date/time."),
        ({"results_visibility": "never"}, "Select a valid choice."),
        ({"dedupe": "\x00"}, "Select a valid choice."),
    ],
)
def test_bad_create_input_gets_400_with_a_message_and_creates_nothing(client, db, fields, message):
    response = client.post("/polls/new/", create_form(**fields))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Poll.objects.exists()


def test_a_refused_form_keeps_what_was_typed(client, db):
    response = client.post("/polls/new/", create_form(question="", choices=["Noodles", "Tacos", "Pho"]))
    html = response.content.decode()
    assert 'value="Pho"' in html
    assert 'aria-invalid="true"' in html


@HTMX_CASES
def test_add_a_choice_without_javascript_shows_the_form_again_with_one_more_row(client, db, headers):
    response = client.post("/polls/new/", create_form(question="Kept?", add_choice="1"), **headers)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('name="choices"') == 4
    assert 'value="Kept?"' in html and 'value="Salad"' in html
    assert not Poll.objects.exists()


@HTMX_CASES
def test_add_a_choice_with_htmx_returns_one_empty_row(client, db, headers):
    response = client.get("/polls/new/choice-row/", **headers)
    assert response.status_code == 200
    html = response.content.decode().strip()
    assert html.startswith('<li class="choice-row">') and html.endswith("</li>")
    assert html.count('name="choices"') == 1


# --- poll page and voting ------------------------------------------------------------------


@HTMX_CASES
def test_the_poll_page_shows_radio_buttons_for_a_single_choice_poll(client, poll, headers):
    response = client.get(poll.url(), **headers)
    assert response.status_code == 200
    html = response.content.decode()
    assert poll.poll.question in html
    assert html.count('type="radio" name="choice"') == 3
    assert f'hx-post="/p/{poll.slug}/vote/"' in html and f'action="/p/{poll.slug}/vote/"' in html


@HTMX_CASES
def test_each_vote_option_is_labelled_by_its_own_choice_text(client, poll, headers):
    html = client.get(poll.url(), **headers).content.decode()
    options = re.findall(r'<label class="vote-option">\s*<input ([^>]*)>\s*<span[^>]*>([^<]*)</span>', html)
    assert [text for _, text in options] == ["Databases", "Browsers", "Compilers"]
    assert not any("aria-label" in attributes for attributes, _ in options)


def test_the_poll_page_shows_checkboxes_and_the_maximum_for_multiple_choice(client, make_poll):
    poll = make_poll(max_choices=2)
    html = client.get(poll.url()).content.decode()
    assert html.count('type="checkbox" name="choice"') == 3
    assert "Pick up to 2." in html


def test_a_plain_vote_is_counted_and_redirects_to_the_poll_page(client, poll):
    response = vote(client, poll, poll.choice_ids[1])
    assert response.status_code == 302
    assert response["Location"] == poll.url()
    html = client.get(poll.url()).content.decode()
    assert 'id="results"' in html and "1 vote" in html
    assert 'name="choice"' not in html
    assert [c.votes for c in selectors.poll_results(poll=poll.poll).choices] == [0, 1, 0]


def test_an_htmx_vote_returns_the_results_fragment_only(client, poll):
    response = vote(client, poll, poll.choice_ids[0], headers=HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="poll-body"')
    assert "<html" not in html
    assert "Thanks, your vote is in." in html
    assert 'id="results"' in html and 'aria-live="polite"' in html
    assert "100%" in html


@HTMX_CASES
def test_a_repeat_vote_gets_409_already_voted_with_results_and_is_not_counted(client, poll, headers):
    vote(client, poll, poll.choice_ids[0])
    response = vote(client, poll, poll.choice_ids[1], headers=headers)
    assert response.status_code == 409
    html = response.content.decode()
    assert "You have already voted in this poll" in html
    assert 'id="results"' in html
    assert total_ballots(poll) == 1
    assert [c.votes for c in selectors.poll_results(poll=poll.poll).choices] == [1, 0, 0]


def test_a_repeat_vote_on_a_poll_hiding_results_does_not_reveal_them(client, make_poll):
    poll = make_poll(results_visibility="after_close")
    vote(client, poll, poll.choice_ids[0])
    response = vote(client, poll, poll.choice_ids[0], headers=HTMX)
    assert response.status_code == 409
    html = response.content.decode()
    assert "already voted" in html
    assert 'id="results"' not in html and "1 vote" not in html
    assert "Results will be shown when the poll closes." in html


def test_two_browsers_count_twice_and_the_first_browser_cannot_vote_again(client, other_browser, poll):
    assert vote(client, poll, poll.choice_ids[0]).status_code == 302
    assert vote(other_browser, poll, poll.choice_ids[1]).status_code == 302
    assert vote(client, poll, poll.choice_ids[1]).status_code == 409
    assert [c.votes for c in selectors.poll_results(poll=poll.poll).choices] == [1, 1, 0]


def test_ip_mode_refuses_a_second_browser_from_the_same_address(client, other_browser, make_poll):
    poll = make_poll(dedupe="ip")
    assert vote(client, poll, poll.choice_ids[0]).status_code == 302
    response = vote(other_browser, poll, poll.choice_ids[1], headers=HTMX)
    assert response.status_code == 409
    assert total_ballots(poll) == 1


def test_none_mode_lets_one_browser_vote_again(client, make_poll):
    poll = make_poll(dedupe="none")
    for _ in range(3):
        assert vote(client, poll, poll.choice_ids[2]).status_code == 302
    assert total_ballots(poll) == 3


@HTMX_CASES
def test_a_vote_on_a_closed_poll_gets_403_and_is_not_counted(client, poll, headers):
    client.post(poll.manage_url("close/"))
    response = vote(client, poll, poll.choice_ids[0], headers=headers)
    assert response.status_code == 403
    assert "This poll is closed" in response.content.decode()
    assert total_ballots(poll) == 0


def test_a_closed_poll_page_shows_results_instead_of_the_form(client, poll):
    client.post(poll.manage_url("close/"))
    html = client.get(poll.url()).content.decode()
    assert 'name="choice"' not in html
    assert "Closed" in html and 'id="results"' in html


@pytest.mark.parametrize(
    ("choice", "message"),
    [
        ([], "Pick a choice before voting."),
        (["abc"], "That choice is not part of this poll."),
        (["999999999"], "That choice is not part of this poll."),
        (["1\x00"], "That choice is not part of this poll."),
        (["-1"], "That choice is not part of this poll."),
        (["9" * 400], "That choice is not part of this poll."),
    ],
)
@HTMX_CASES
def test_bad_vote_input_gets_400_with_a_message(client, poll, headers, choice, message):
    response = client.post(poll.url("vote/"), {"choice": choice}, **headers)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert total_ballots(poll) == 0


def test_a_choice_of_another_poll_is_refused(client, poll, make_poll):
    other = make_poll(question="Other?")
    response = vote(client, poll, other.choice_ids[0])
    assert response.status_code == 400
    assert "not part of this poll" in response.content.decode()


def test_too_many_picks_on_a_multiple_choice_poll_are_refused(client, make_poll):
    poll = make_poll(max_choices=2)
    response = vote(client, poll, *poll.choice_ids, headers=HTMX)
    assert response.status_code == 400
    assert "Pick at most 2 choices." in response.content.decode()
    assert total_ballots(poll) == 0


def test_two_picks_on_a_single_choice_poll_are_refused(client, poll):
    response = vote(client, poll, *poll.choice_ids[:2])
    assert response.status_code == 400
    assert "Pick only one choice." in response.content.decode()


def test_voting_needs_a_post(client, poll):
    assert client.get(poll.url("vote/")).status_code == 405


# --- results, live and QR ------------------------------------------------------------------


@HTMX_CASES
def test_the_results_page_shows_bars_counts_percentages_total_and_share_box(client, other_browser, poll, headers):
    vote(client, poll, poll.choice_ids[0])
    vote(other_browser, poll, poll.choice_ids[0])
    response = client.get(poll.url("results/"), **headers)
    assert response.status_code == 200
    html = response.content.decode()
    assert poll.poll.question in html
    assert "<strong>100%</strong> · 2 votes" in html and "<strong>0%</strong> · 0 votes" in html
    assert '<span id="results-total">2</span> votes' in html
    assert f"readonly>http://testserver/p/{poll.slug}/</textarea>" in html  # the short link
    assert f'src="/p/{poll.slug}/qr.svg"' in html
    assert "data-copy=" in html


@pytest.mark.parametrize("visibility", ["after_vote", "after_close"])
@HTMX_CASES
def test_hidden_results_never_reach_the_html_of_a_viewer_who_may_not_see_them(
    client, other_browser, make_poll, visibility, headers
):
    poll = make_poll(results_visibility=visibility, choices=["Secret Alpha", "Secret Beta"])
    vote(other_browser, poll, poll.choice_ids[0])
    for path in ("", "results/", "live/"):
        html = client.get(poll.url(path), **headers).content.decode()
        assert 'id="results"' not in html, path
        assert "1 vote" not in html and "100%" not in html, path


@pytest.mark.parametrize("visibility", ["after_vote", "after_close"])
@pytest.mark.parametrize(
    ("refusal", "status"), [("bad input", 400), ("address already voted", 409), ("rate limited", 429)]
)
@HTMX_CASES
def test_hidden_results_stay_hidden_from_a_browser_whose_vote_was_refused(
    client, other_browser, make_poll, settings, visibility, refusal, status, headers
):
    poll = make_poll(results_visibility=visibility, dedupe="ip", choices=["Secret Alpha", "Secret Beta"])
    if refusal == "rate limited":
        settings.RATELIMIT_VOTES_PER_ADDRESS = 1
    vote(other_browser, poll, poll.choice_ids[0])  # from the same address as `client`
    choices = [] if refusal == "bad input" else [poll.choice_ids[1]]

    response = vote(client, poll, *choices, headers=headers)

    assert response.status_code == status
    html = response.content.decode()
    assert 'id="results"' not in html
    assert "1 vote" not in html and "100%" not in html
    assert total_ballots(poll) == 1


def test_after_vote_shows_results_once_this_browser_has_voted(client, make_poll):
    poll = make_poll(results_visibility="after_vote")
    assert 'id="results"' not in client.get(poll.url("results/")).content.decode()
    vote(client, poll, poll.choice_ids[0])
    assert "1 vote" in client.get(poll.url("results/")).content.decode()


def test_after_close_shows_results_to_everyone_once_closed(client, make_poll):
    poll = make_poll(results_visibility="after_close")
    Client().post(poll.url("vote/"), {"choice": [poll.choice_ids[0]]})
    client.post(poll.manage_url("close/"))
    assert "1 vote" in Client().get(poll.url("results/")).content.decode()


@HTMX_CASES
def test_the_live_page_shows_question_results_short_link_and_qr(client, poll, headers):
    response = client.get(poll.url("live/"), **headers)
    assert response.status_code == 200
    html = response.content.decode()
    assert poll.poll.question in html
    assert f"testserver/p/{poll.slug}/" in re.sub(r"<[^>]+>", "", html)  # as read off the screen
    assert f'src="/p/{poll.slug}/qr.svg"' in html
    assert 'id="results"' in html


@pytest.mark.parametrize(
    ("query", "theme"),
    [("?overlay=1", "dark"), ("?overlay=1&theme=light", "light"), ("?overlay=1&theme=neon", "dark")],
)
def test_the_stream_overlay_may_be_framed_by_a_stream_tool_and_takes_its_theme(client, poll, query, theme):
    response = client.get(poll.url(f"live/{query}"))
    assert response.status_code == 200
    assert csp_directives(response["Content-Security-Policy"])["frame-ancestors"] == ["*"]
    assert "X-Frame-Options" not in response
    body_class = re.search(r'<body class="([^"]*)"', response.content.decode())[1].split()
    assert "overlay" in body_class and f"theme-{theme}" in body_class


def decode_qr_svg(svg: bytes) -> str:
    """Reads a QR code back from segno's SVG: its path draws each row's dark runs as `h` strokes."""
    root = ElementTree.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    size = int(root.get("viewBox").split()[2]) // 8
    image = Image.new("L", (size * 4, size * 4), 255)
    draw = ImageDraw.Draw(image)
    x = y = 0.0
    strokes = next(path for path in root.iter("{http://www.w3.org/2000/svg}path") if path.get("stroke"))
    for command, numbers in re.findall(r"([Mmh])([-\d. ]+)", strokes.get("d")):
        values = [float(n) for n in numbers.split()]
        if command == "M":
            x, y = values
        elif command == "m":
            x, y = x + values[0], y + values[1]
        else:
            draw.rectangle([x * 4, (y - 0.5) * 4, (x + values[0]) * 4 - 1, (y + 0.5) * 4 - 1], fill=0)
            x += values[0]
    (found,) = zxingcpp.read_barcodes(image)
    return found.text


@HTMX_CASES
def test_the_qr_code_is_an_svg_that_scans_as_the_share_url(client, poll, headers):
    response = client.get(poll.url("qr.svg"), **headers)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert decode_qr_svg(response.content) == f"http://testserver/p/{poll.slug}/"


# --- owner pages ---------------------------------------------------------------------------


@HTMX_CASES
def test_the_owner_page_shows_results_and_controls(client, make_poll, headers):
    poll = make_poll(results_visibility="after_close")
    Client().post(poll.url("vote/"), {"choice": [poll.choice_ids[0]]})
    response = client.get(poll.manage_url(), **headers)
    assert response.status_code == 200
    html = response.content.decode()
    assert "1 vote" in html
    assert "Close voting now" in html
    assert f'href="/p/{poll.slug}/manage/{poll.token}/export.csv"' in html
    assert response["Cache-Control"].startswith("no-store") or "private" in response["Cache-Control"]


@pytest.mark.parametrize("suffix", ["", "export.csv", "delete/"])
def test_a_wrong_owner_token_is_404(client, poll, suffix):
    wrong = poll.token[:-2] + ("aa" if not poll.token.endswith("aa") else "bb")
    response = client.get(f"/p/{poll.slug}/manage/{wrong}/{suffix}")
    assert response.status_code == 404


@pytest.mark.parametrize("action", ["close/", "reopen/", "settings/", "delete/"])
def test_owner_actions_with_a_wrong_token_are_404_and_change_nothing(client, poll, action):
    response = client.post(f"/p/{poll.slug}/manage/not-the-token/{action}", {"results_visibility": "after_close"})
    assert response.status_code == 404
    stored = Poll.objects.get(pk=poll.poll.pk)
    assert not stored.closed and stored.results_visibility == "always"


@HTMX_CASES
def test_the_owner_can_close_and_reopen_the_poll(client, poll, headers):
    response = client.post(poll.manage_url("close/"), **headers)
    assert response.status_code == 302
    assert Poll.objects.get(pk=poll.poll.pk).closed
    assert "Reopen voting" in client.get(poll.manage_url()).content.decode()
    client.post(poll.manage_url("reopen/"), **headers)
    assert not Poll.objects.get(pk=poll.poll.pk).closed
    assert vote(client, poll, poll.choice_ids[0]).status_code == 302


@HTMX_CASES
def test_the_owner_can_set_and_clear_the_deadline_and_visibility(client, poll, headers):
    response = client.post(
        poll.manage_url("settings/"),
        {"closes_at": "2099-01-02T03:04", "tz": "UTC", "results_visibility": "after_vote"},
        **headers,
    )
    assert response.status_code == 302
    stored = Poll.objects.get(pk=poll.poll.pk)
    assert stored.closes_at.isoformat() == "2099-01-02T03:04:00+00:00"
    assert stored.results_visibility == "after_vote"
    client.post(poll.manage_url("settings/"), {"closes_at": "", "results_visibility": "always"}, **headers)
    stored = Poll.objects.get(pk=poll.poll.pk)
    assert stored.closes_at is None and stored.results_visibility == "always"


def test_saving_settings_confirms_it_once(client, poll):
    response = client.post(poll.manage_url("settings/"), {"closes_at": "", "results_visibility": "after_vote"})
    assert response["Location"] == poll.manage_url()
    saved = '<p class="alert alert-success" role="status">Settings saved.</p>'
    assert saved in client.get(poll.manage_url()).content.decode()
    assert "Settings saved" not in client.get(poll.manage_url()).content.decode()


def test_the_big_screen_view_opens_in_a_new_tab_and_says_so(client, poll):
    html = client.get(poll.manage_url()).content.decode()
    assert (
        f'<a href="/p/{poll.slug}/live/" target="_blank" rel="noopener">Open the big-screen view'
        '<span class="visually-hidden"> (opens in a new tab)</span></a>'
    ) in html


def test_the_owner_page_offers_the_current_deadline_for_conversion_to_local_time(client, poll):
    client.post(poll.manage_url("settings/"), {"closes_at": "2099-01-02T03:04", "results_visibility": "always"})
    html = client.get(poll.manage_url()).content.decode()
    assert 'value="2099-01-02T03:04"' in html
    assert 'data-utc-value="2099-01-02T03:04:00+00:00"' in html


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"closes_at": "2001-01-01T00:00", "results_visibility": "always"}, "The deadline must be in the future."),
        ({"closes_at": "soon", "results_visibility": "always"}, "Enter a valid date/time."),
        ({"closes_at": "", "results_visibility": "never"}, "Select a valid choice."),
        ({"closes_at": "\x00", "results_visibility": "always"}, "Enter a valid date/time."),
    ],
)
def test_bad_settings_get_400_with_a_message_and_change_nothing(client, poll, fields, message):
    response = client.post(poll.manage_url("settings/"), fields)
    assert response.status_code == 400
    assert message in response.content.decode()
    stored = Poll.objects.get(pk=poll.poll.pk)
    assert stored.closes_at is None and stored.results_visibility == "always"


@HTMX_CASES
def test_deleting_asks_for_confirmation_first(client, poll, headers):
    response = client.get(poll.manage_url("delete/"), **headers)
    assert response.status_code == 200
    assert "Delete for good" in response.content.decode()
    assert Poll.objects.filter(pk=poll.poll.pk).exists()


@HTMX_CASES
def test_confirming_the_delete_removes_the_poll_and_its_links(client, poll, headers):
    vote(client, poll, poll.choice_ids[0])
    response = client.post(poll.manage_url("delete/"), **headers)
    assert response.status_code == 200
    assert "Poll deleted" in response.content.decode()
    assert not Poll.objects.filter(pk=poll.poll.pk).exists()
    assert not Ballot.objects.exists()
    assert client.get(poll.url()).status_code == 404
    assert client.get(poll.manage_url()).status_code == 404


@HTMX_CASES
def test_the_owner_downloads_the_ballots_as_csv(client, other_browser, make_poll, headers):
    poll = make_poll(max_choices=3, dedupe="ip")
    vote(client, poll, poll.choice_ids[0], poll.choice_ids[2])
    Client(REMOTE_ADDR="198.51.100.9").post(poll.url("vote/"), {"choice": [poll.choice_ids[1]]})
    response = client.get(poll.manage_url("export.csv"), **headers)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f'filename="crowdtick-{poll.slug}.csv"' in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0] == ["submitted_at", "choices"]
    assert sorted(row[1] for row in rows[1:]) == ["Browsers", "Databases; Compilers"]
    assert all(row[0].endswith("Z") for row in rows[1:])
    for ballot in Ballot.objects.all():
        assert ballot.voter_key not in body and ballot.ip_hash not in body


# --- the owner's chart ----------------------------------------------------------------------


def votes_from_browsers(poll, *choice_indexes) -> None:
    for index in choice_indexes:
        Client().post(poll.url("vote/"), {"choice": [poll.choice_ids[index]]})


@HTMX_CASES
def test_the_owner_page_says_no_votes_yet_instead_of_an_empty_chart(client, poll, headers):
    html = client.get(poll.manage_url(), **headers).content.decode()
    assert "Votes per minute, last hour" in html
    assert "No votes yet." in html
    assert "minute-fill" not in html


@HTMX_CASES
def test_the_owner_page_charts_votes_per_minute_with_a_text_alternative(client, poll, headers):
    votes_from_browsers(poll, 0, 1)
    # Both in one minute, five minutes ago, so the test never straddles a minute's end.
    minute = (timezone.now() - timedelta(minutes=5)).replace(second=10, microsecond=0)
    Ballot.objects.filter(poll_id=poll.poll.id).update(submitted_at=minute)
    html = client.get(poll.manage_url(), **headers).content.decode()
    assert html.count('class="minute-bar"') == 60
    assert html.count('class="minute-fill" width="1" height="0"') == 59
    assert 'class="minute-fill" width="1" height="100"' in html  # the busiest minute, the only one here
    # The visually hidden table screen readers get; its time in UTC until app.js writes it in their zone.
    cell = r'<tr><th scope="row"><time datetime="([^"]+)" data-local="time">([^<]+)</time></th><td>2 votes</td>'
    row = re.search(cell, html)
    assert row and row.group(2) == f"{minute:%H:%M} UTC" and row.group(1).startswith(f"{minute:%Y-%m-%dT%H:%M}")
    assert "2 votes in the last hour" in html
    assert "style=" not in html  # the CSP forbids inline styles: heights are classes


def test_the_chart_partial_returns_only_the_chart_for_htmx(client, poll):
    votes_from_browsers(poll, 2)
    response = client.get(poll.manage_url("chart/"), **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<section class="card vote-chart" id="vote-chart"')
    assert 'hx-trigger="every 30s"' in html
    assert "1 vote in the last hour" in html
    assert "<html" not in html and "Close voting now" not in html


def test_the_chart_address_without_htmx_leads_to_the_owner_page_at_the_chart(client, poll):
    response = client.get(poll.manage_url("chart/"))
    assert response.status_code == 302
    assert response["Location"] == poll.manage_url() + "#vote-chart"
    assert 'href="' + poll.manage_url("chart/") + '"' in client.get(poll.manage_url()).content.decode()


@HTMX_CASES
def test_the_chart_with_a_wrong_owner_token_is_404(client, poll, headers):
    assert client.get(f"/p/{poll.slug}/manage/not-the-token/chart/", **headers).status_code == 404


# --- exports of large polls through Celery ------------------------------------------------


@pytest.fixture
def large(settings, export_root):
    """Polls with more than one ballot count as large, so two votes make one."""
    settings.EXPORT_INLINE_MAX_BALLOTS = 1


@pytest.fixture
def queued(monkeypatch) -> list[int]:
    """The export task's queue: enqueued poll ids, run by hand with `tasks.export_poll`."""
    enqueued = []
    monkeypatch.setattr(tasks.export_poll, "delay", enqueued.append)
    return enqueued


def test_a_small_poll_streams_its_csv_from_the_owner_page_link(client, poll, export_root, queued):
    votes_from_browsers(poll, 0, 1)
    html = client.get(poll.manage_url()).content.decode()
    assert f'href="{poll.manage_url("export.csv")}" download' in html
    assert "Preparing your export" not in html and poll.manage_url("export/") not in html
    response = client.get(poll.manage_url("export.csv"))
    assert response.streaming and len(b"".join(response.streaming_content).splitlines()) == 3
    assert queued == [] and not export_root.exists()


@HTMX_CASES
def test_a_large_poll_offers_a_post_that_prepares_the_export(client, poll, large, headers):
    votes_from_browsers(poll, 0, 1)
    html = client.get(poll.manage_url(), **headers).content.decode()
    assert f'href="{poll.manage_url("export.csv")}"' not in html
    assert f'<form method="post" action="{poll.manage_url("export/")}"' in html
    assert "Download ballots (CSV)</button>" in html


def test_the_csv_address_of_a_large_poll_leads_to_the_export_page_instead_of_streaming(client, poll, large, queued):
    votes_from_browsers(poll, 0, 1)
    response = client.get(poll.manage_url("export.csv"))
    assert response.status_code == 302 and response["Location"] == poll.manage_url("export/")
    assert queued == []  # a GET starts nothing


def test_without_javascript_the_export_is_enqueued_then_shown_as_preparing_until_ready(client, poll, large, queued):
    votes_from_browsers(poll, 0, 1)
    response = client.post(poll.manage_url("export/"))
    assert response.status_code == 302 and response["Location"] == poll.manage_url("export/")
    assert queued == [poll.poll.id]

    html = client.get(poll.manage_url("export/")).content.decode()
    assert "Preparing your export…" in html
    assert f'<a href="{poll.manage_url("export/")}">Refresh</a>' in html
    assert poll.manage_url("export/file/") not in html

    tasks.export_poll(queued[0])  # the worker
    html = client.get(poll.manage_url("export/")).content.decode()
    assert "Preparing your export" not in html
    assert "Your file is ready." in html and '<span class="export-age">exported now</span>' in html
    assert f'href="{poll.manage_url("export/file/")}"' in html


def test_with_htmx_the_preparing_fragment_polls_until_the_file_is_ready(client, poll, large, queued):
    votes_from_browsers(poll, 0, 1)
    response = client.post(poll.manage_url("export/"), **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert "Preparing your export…" in html
    polling_url = poll.manage_url("export/") + "?polling=1"
    assert f'hx-get="{polling_url}" hx-trigger="every 2s"' in html

    assert client.get(polling_url, **HTMX).status_code == 204  # still pending: nothing to swap
    tasks.export_poll(queued[0])
    html = client.get(polling_url, **HTMX).content.decode()
    assert "Your file is ready." in html and "hx-trigger" not in html  # polling stops


@HTMX_CASES
def test_a_second_click_starts_no_second_export_while_one_is_pending_or_fresh(client, poll, large, queued, headers):
    votes_from_browsers(poll, 0, 1)
    client.post(poll.manage_url("export/"), **headers)
    client.post(poll.manage_url("export/"), **headers)
    assert queued == [poll.poll.id]
    tasks.export_poll(queued[0])
    client.post(poll.manage_url("export/"), **headers)
    assert queued == [poll.poll.id]  # the file is fresh


def test_an_old_export_says_how_old_it_is_and_may_be_redone_when_ballots_arrived_since(
    client, poll, large, queued, export_root
):
    votes_from_browsers(poll, 0, 1)
    client.post(poll.manage_url("export/"))
    path = tasks.export_poll(queued[0])
    hours_ago = timezone.now().timestamp() - 3 * 3600
    os.utime(path, (hours_ago, hours_ago))
    votes_from_browsers(poll, 2)
    html = client.get(poll.manage_url("export/")).content.decode()
    assert "exported 3\xa0hours ago" in html
    assert "Ballots cast after that are not in it." in html
    assert "Export again with the latest ballots" in html
    client.post(poll.manage_url("export/"))
    assert queued == [poll.poll.id, poll.poll.id]


def test_in_embedded_mode_the_export_is_ready_when_the_page_comes_back(client, poll, large, embedded):
    votes_from_browsers(poll, 0, 1)
    html = client.post(poll.manage_url("export/"), follow=True).content.decode()
    assert "Your file is ready." in html
    body = b"".join(client.get(poll.manage_url("export/file/")).streaming_content).decode()
    assert sorted(row[1] for row in csv.reader(io.StringIO(body)))[:2] == ["Browsers", "Databases"]


def test_a_queue_that_does_not_answer_gets_a_503_with_a_message_and_may_be_retried(client, poll, large, monkeypatch):
    def broker_down(poll_id):
        raise OperationalError("connection refused")

    votes_from_browsers(poll, 0, 1)
    monkeypatch.setattr(tasks.export_poll, "delay", broker_down)
    response = client.post(poll.manage_url("export/"))
    assert response.status_code == 503
    assert "could not be started just now" in response.content.decode()
    assert not selectors.poll_export_status(poll=poll.poll).pending
    htmx = client.post(poll.manage_url("export/"), **HTMX)  # HTMX swaps only 2xx and some 4xx (base.html)
    assert htmx.status_code == 200 and "could not be started just now" in htmx.content.decode()


@HTMX_CASES
def test_the_export_file_downloads_only_with_the_owner_token(client, poll, large, queued, headers):
    votes_from_browsers(poll, 0, 1)
    assert client.get(poll.manage_url("export/file/"), **headers).status_code == 404  # none written yet
    client.post(poll.manage_url("export/"))
    tasks.export_poll(queued[0])

    for wrong in ("not-the-token", poll.token[:-1] + ("a" if poll.token[-1] != "a" else "b")):
        assert client.get(f"/p/{poll.slug}/manage/{wrong}/export/file/", **headers).status_code == 404
        assert client.get(f"/p/{poll.slug}/manage/{wrong}/export/", **headers).status_code == 404
        assert client.post(f"/p/{poll.slug}/manage/{wrong}/export/", **headers).status_code == 404
    response = client.get(poll.manage_url("export/file/"), **headers)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f'attachment; filename="crowdtick-{poll.slug}.csv"' == response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["submitted_at", "choices"] and len(rows) == 3


def test_the_export_file_path_never_comes_from_the_request(client, poll, large, export_root):
    export_root.mkdir()
    (export_root / "secret.csv").write_text("not yours")
    for path in ("export/file/../../secret.csv", "export/file/?path=secret.csv", "export/file/secret.csv"):
        response = client.get(poll.manage_url(path))
        assert response.status_code == 404


# --- health, 404 and refused requests ------------------------------------------------------


@HTMX_CASES
def test_healthz_answers_ok(client, headers):
    response = client.get("/healthz", **headers)
    assert (response.status_code, response.content) == (200, b"ok")


def test_readyz_reports_the_database(client, db):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["ready"] is True
    assert response.json()["checks"]["database"] is True


@pytest.mark.parametrize(
    "path",
    [
        "/p/nosuchpoll/",
        "/p/nosuchpoll/results/",
        "/p/nosuchpoll/live/",
        "/p/nosuchpoll/qr.svg",
        "/p/nosuchpoll/manage/whatever/",
        "/p/a%00b/",
        "/p/" + "a" * 300 + "/",
        "/nowhere/",
    ],
)
@HTMX_CASES
def test_unknown_addresses_get_the_friendly_404_page(client, db, path, headers):
    response = client.get(path, **headers)
    assert response.status_code == 404
    assert "No poll lives at this address" in response.content.decode()


def test_a_vote_on_an_unknown_poll_is_404(client, db):
    assert client.post("/p/nosuchpoll/vote/", {"choice": ["1"]}).status_code == 404


def test_an_owner_token_with_a_nul_byte_is_404(client, poll):
    assert client.get(f"/p/{poll.slug}/manage/{poll.token}%00/").status_code == 404


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/polls/new/", create_form()),
        ("vote", {"choice": ["1"]}),
        ("close", {}),
    ],
)
def test_a_post_without_the_csrf_token_is_refused_with_a_friendly_403(poll, path, data):
    browser = Client(enforce_csrf_checks=True)
    url = {"vote": poll.url("vote/"), "close": poll.manage_url("close/")}.get(path, path)
    response = browser.post(url, data)
    assert response.status_code == 403
    html = response.content.decode()
    assert "<html" in html and "could not be checked" in html
    assert Poll.objects.count() == 1 and not Poll.objects.get().closed
    assert total_ballots(poll) == 0


def test_a_post_with_the_csrf_token_from_the_page_is_accepted(poll):
    browser = Client(enforce_csrf_checks=True)
    page = browser.get(poll.url()).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
    response = browser.post(poll.url("vote/"), {"choice": [poll.choice_ids[0]], "csrfmiddlewaretoken": token})
    assert response.status_code == 302


def test_a_body_too_large_to_read_is_a_400_not_a_500(client, db):
    response = client.post("/polls/new/", create_form(description="x" * 300_000))
    assert response.status_code == 400
    assert "We could not understand what your browser sent" in response.content.decode()
    assert not Poll.objects.exists()


def test_the_error_pages_explain_themselves(rf, db):
    from django.views import defaults

    server_error = defaults.server_error(rf.get("/"))
    assert server_error.status_code == 500
    assert "Something went wrong on our side" in server_error.content.decode()
    bad_request = defaults.bad_request(rf.get("/"), Exception("bad"))
    assert bad_request.status_code == 400
    assert "could not understand" in bad_request.content.decode()
    forbidden = defaults.permission_denied(rf.get("/"), Exception("no"))
    assert forbidden.status_code == 403
    assert "not allowed" in forbidden.content.decode()


@pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="polls and tallies are read from Redis only when REDIS_URL is set"
)
@pytest.mark.parametrize(
    ("page", "shows"), [("", 'name="choice"'), ("results/", 'data-version="0"'), ("live/", 'data-version="0"')]
)
def test_a_page_with_results_reads_the_poll_and_its_tally_in_one_redis_round_trip(
    client, poll, page, shows, monkeypatch, django_assert_num_queries
):
    import redis

    client.get(poll.url(""))  # the tally exists and this process knows the poll
    sent = []
    send = redis.connection.Connection.send_packed_command
    monkeypatch.setattr(
        redis.connection.Connection, "send_packed_command", lambda c, *a, **k: sent.append(a) or send(c, *a, **k)
    )
    fresh_browser = Client()  # no voter cookie: nothing to ask the database
    with django_assert_num_queries(0):
        response = fresh_browser.get(poll.url(page))

    assert response.status_code == 200
    assert shows in response.content.decode()
    assert len(sent) == 1


# --- small HTTP gaps ------------------------------------------------------------------------


def test_the_favicon_address_answers_with_the_svg_icon_and_may_be_cached(client, db):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert b"".join(response).startswith(b"<svg")
    directives = {part.strip() for part in response["Cache-Control"].split(",")}
    assert "public" in directives and "max-age=86400" in directives


def test_under_asgi_the_csv_streams_without_a_warning_and_the_same_bytes(client, make_poll, recwarn):
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    poll = make_poll(max_choices=3)
    vote(client, poll, poll.choice_ids[0], poll.choice_ids[2])
    Client().post(poll.url("vote/"), {"choice": [poll.choice_ids[1]]})
    under_wsgi = b"".join(client.get(poll.manage_url("export.csv")).streaming_content)

    async def download() -> bytes:
        response = await AsyncClient().get(poll.manage_url("export.csv"))
        # As Django's ASGI handler sends a streaming body to uvicorn.
        return b"".join([part async for part in response])

    under_asgi = async_to_sync(download)()
    assert [str(w.message) for w in recwarn if "StreamingHttpResponse" in str(w.message)] == []
    assert under_asgi == under_wsgi
    assert under_asgi.count(b"\r\n") == 3  # the header and two ballots
