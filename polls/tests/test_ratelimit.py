"""Rate limits: per address and per voter, in Redis when configured and in-process otherwise."""

import logging
import math
import threading

import pytest
from django.test import Client

from polls import ratelimit, services
from polls.models import Poll
from polls.ratelimit import RateLimited, rate_limit_check
from polls.redis_client import get_redis
from polls.voters import address_network


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.RATELIMIT_ENABLE = True
    settings.RATELIMIT_WINDOW = 3600  # long, so no test straddles a window boundary
    settings.RATELIMIT_VOTES_PER_ADDRESS = 5
    settings.RATELIMIT_VOTES_PER_VOTER = 2
    settings.RATELIMIT_POLLS_PER_ADDRESS = 3
    settings.RATELIMIT_POLLS_PER_ADDRESS_PER_DAY = 200


def allowed(**kwargs) -> bool:
    try:
        rate_limit_check(**kwargs)
    except RateLimited:
        return False
    return True


def test_a_voter_is_stopped_after_the_per_voter_limit():
    results = [allowed(action="vote", ip_address="198.51.100.1", voter_key="v") for _ in range(3)]
    assert results == [True, True, False]
    assert allowed(action="vote", ip_address="198.51.100.1", voter_key="another")


def test_an_address_is_stopped_after_the_per_address_limit_whatever_the_voter():
    results = [allowed(action="vote", ip_address="198.51.100.2", voter_key=f"v{i}") for i in range(6)]
    assert results == [True] * 5 + [False]
    assert allowed(action="vote", ip_address="198.51.100.3", voter_key="v-elsewhere")


class Clock:
    """The limiter's clock, driven by the test: a minute passes without waiting for it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    clock = Clock(1_800_000_000.0)  # a whole number of minutes and hours: a fixed window would start here
    monkeypatch.setattr(ratelimit, "_now", clock)
    return clock


@pytest.fixture(params=["redis", "embedded"])
def counters(request, settings):
    """Runs the test against the counters in Redis, then against the embedded mode's in this process."""
    if request.param == "redis" and not get_redis():
        pytest.skip("needs REDIS_URL")
    if request.param == "embedded":
        settings.REDIS_URL = ""
    return request.param


def admitted_times(clock, times: list[float], **request) -> list[float]:
    """Sends one request at each of `times` (seconds from the clock's start); returns those let through."""
    start, admitted = clock.now, []
    for moment in times:
        clock.now = start + moment
        if allowed(**request):
            admitted.append(moment)
    return admitted


def most_in_any_stretch(admitted: list[float], *, seconds: float) -> int:
    """The most requests let through within any stretch of `seconds` (the busiest ends at a request)."""
    return max((sum(1 for other in admitted if end - seconds < other <= end) for end in admitted), default=0)


def test_no_stretch_as_long_as_the_window_lets_through_more_than_the_limit_across_a_boundary(settings, clock, counters):
    settings.RATELIMIT_WINDOW = 60
    settings.RATELIMIT_VOTES_PER_VOTER = 10
    # The whole limit just before a minute ends, all of it again just after (a fixed window let both
    # through: twice the limit in a second), then a steady retry every half second for three minutes.
    burst = [59.5 + i / 100 for i in range(10)] + [60.2 + i / 100 for i in range(10)]
    steady = [61 + i / 2 for i in range(360)]
    admitted = admitted_times(clock, burst + steady, action="vote", ip_address=None, voter_key="v")
    assert most_in_any_stretch(admitted, seconds=60) == 10
    assert admitted[:10] == burst[:10] and not set(burst[10:]) & set(admitted)
    # Still the limit's worth per window, not less: the burst's ten, then ten more for every 65 s after.
    assert len(admitted) >= 10 + 10 * (180 // 65)


def test_the_refusal_says_how_long_to_wait_and_that_is_long_enough(settings, clock, counters):
    settings.RATELIMIT_WINDOW = 60
    for _ in range(2):
        rate_limit_check(action="vote", ip_address=None, voter_key="v")
    clock.advance(30)
    with pytest.raises(RateLimited) as refused:
        rate_limit_check(action="vote", ip_address=None, voter_key="v")
    wait = refused.value.retry_after
    assert 30 <= wait <= 35  # the first two age out 60 to 65 s after they came (the slice they came in)
    assert refused.value.message == f"Too many votes from you. Try again in {wait} seconds."
    clock.advance(wait - 1)
    assert not allowed(action="vote", ip_address=None, voter_key="v")
    clock.advance(1)
    assert allowed(action="vote", ip_address=None, voter_key="v")


def test_an_address_makes_at_most_the_daily_number_of_polls_in_any_24_hours(settings, clock, counters):
    settings.RATELIMIT_POLLS_PER_ADDRESS_PER_DAY = 5
    made = admitted_times(clock, [hour * 3600 for hour in range(30)], action="create", ip_address="198.51.100.10")
    assert made[:5] == [0, 3600, 7200, 10800, 14400]
    assert most_in_any_stretch(made, seconds=24 * 3600) == 5
    assert made[5] >= 24 * 3600  # the first ones aged out after a day: the address may make polls again
    clock.now = 1_800_000_000.0 + 6 * 3600
    with pytest.raises(RateLimited) as refused:
        rate_limit_check(action="create", ip_address="198.51.100.10")
    assert "made 5 polls in the last 24 hours" in refused.value.message
    assert refused.value.message.endswith(f"Try again in {math.ceil(refused.value.retry_after / 3600)} hours.")
    assert allowed(action="create", ip_address="198.51.100.11")  # another address has its own


def test_the_refusal_says_how_long_to_wait():
    for _ in range(2):
        rate_limit_check(action="vote", ip_address=None, voter_key="v")
    with pytest.raises(RateLimited) as refused:
        rate_limit_check(action="vote", ip_address=None, voter_key="v")
    assert 1 <= refused.value.retry_after <= 3600 + 3600 / ratelimit.SLICES
    assert "Try again in " in refused.value.message


def test_ipv6_clients_are_counted_by_their_64():
    assert address_network("2001:db8:1:2:aaaa::1") == address_network("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address_network("2001:db8:1:3::1") != address_network("2001:db8:1:2::1")
    assert address_network("::ffff:192.0.2.4") == "192.0.2.4"
    assert address_network("not an address") is None
    results = [allowed(action="create", ip_address=f"2001:db8:1:2::{i}") for i in range(1, 5)]
    assert results == [True, True, True, False]


def test_creation_is_limited_per_address():
    assert [allowed(action="create", ip_address="198.51.100.4") for _ in range(4)] == [True, True, True, False]


def test_ratelimit_enable_off_never_refuses(settings):
    settings.RATELIMIT_ENABLE = False
    assert all(allowed(action="vote", ip_address="198.51.100.5", voter_key="v") for _ in range(10))


def test_an_unknown_action_is_a_programming_error():
    with pytest.raises(ValueError):
        rate_limit_check(action="vot", ip_address="198.51.100.6")


def test_counters_are_exact_under_concurrent_requests(settings):
    settings.RATELIMIT_VOTES_PER_ADDRESS = 50
    settings.RATELIMIT_VOTES_PER_VOTER = 1000
    outcomes: list[bool] = []

    def hammer():
        for _ in range(20):
            outcomes.append(allowed(action="vote", ip_address="198.51.100.7", voter_key="v"))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count(True) == 50 and len(outcomes) == 160


@pytest.mark.skipif(not get_redis(), reason="needs REDIS_URL")
def test_with_redis_the_counters_live_in_redis_and_expire(monkeypatch):
    rate_limit_check(action="vote", ip_address="198.51.100.8", voter_key="v")
    keys = sorted(get_redis().scan_iter(f"{ratelimit.KEY_PREFIX}:*"))
    # Kept as long as a request can still count: the window and one slice.
    assert len(keys) == 2 and all(0 < get_redis().ttl(key) <= 3600 + 3600 / ratelimit.SLICES for key in keys)
    assert not any("198.51.100.8" in key for key in keys)  # addresses are not stored in clear
    # Another process sees the same counters: forgetting this process's memory changes nothing.
    monkeypatch.setattr(ratelimit, "_local_counters", ratelimit._LocalCounters())
    rate_limit_check(action="vote", ip_address="198.51.100.8", voter_key="v")
    assert not allowed(action="vote", ip_address="198.51.100.8", voter_key="v")


def test_with_redis_down_the_check_fails_open_and_logs_it(settings, caplog):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    with caplog.at_level(logging.WARNING, logger="polls.ratelimit"):
        assert all(allowed(action="vote", ip_address="198.51.100.9", voter_key="v") for _ in range(4))
    assert "Rate limits are not enforced" in caplog.text


# --- The HTML doors call the same check ---------------------------------------------------


@pytest.mark.django_db
def test_the_html_vote_form_is_limited_per_voter_with_a_429_and_a_message(settings):
    settings.RATELIMIT_VOTES_PER_VOTER = 1
    browser = Client(HTTP_HOST="127.0.0.1")
    polls = [services.poll_create(question=f"Q{i}", choices=["A", "B"])[0] for i in range(2)]
    first = browser.post(f"/p/{polls[0].slug}/vote/", {"choice": polls[0].choices.first().id})
    assert first.status_code == 302
    refused = browser.post(f"/p/{polls[1].slug}/vote/", {"choice": polls[1].choices.first().id})
    assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 3600 + 3600 / ratelimit.SLICES
    assert "Too many votes from you." in refused.content.decode()
    assert polls[1].ballots.count() == 0


CREATE_FORM = {
    "question": "Tea?",
    "choices": ["Tea", "Coffee"],
    "max_choices": 1,
    "results_visibility": "always",
    "dedupe": "browser",
}


@pytest.mark.django_db
def test_the_html_create_form_is_limited_per_address(settings):
    settings.RATELIMIT_POLLS_PER_ADDRESS = 1
    browser = Client(HTTP_HOST="127.0.0.1")
    assert browser.post("/polls/new/", CREATE_FORM).status_code == 302
    refused = browser.post("/polls/new/", CREATE_FORM)
    assert refused.status_code == 429 and "Too many new polls" in refused.content.decode()
    assert Poll.objects.count() == 1


@pytest.mark.django_db
def test_the_html_create_form_says_when_the_address_made_its_polls_for_the_day(settings):
    settings.RATELIMIT_POLLS_PER_ADDRESS_PER_DAY = 2
    browser = Client(HTTP_HOST="127.0.0.1")
    assert [browser.post("/polls/new/", CREATE_FORM).status_code for _ in range(2)] == [302, 302]
    refused = browser.post("/polls/new/", CREATE_FORM)
    assert refused.status_code == 429 and 24 * 3600 <= int(refused["Retry-After"]) <= 26 * 3600
    page = refused.content.decode()
    assert "Your network has made 2 polls in the last 24 hours, the most it may make in a day." in page
    assert 'value="Tea?"' in page  # the form is shown again as it was filled in
    assert Poll.objects.count() == 2


# --- the services apply them, whatever the door ----------------------------------------------


@pytest.mark.django_db
def test_the_vote_service_refuses_a_voter_past_the_limit_before_any_other_check():
    polls = [services.poll_create(question=f"Q{i}?", choices=["Yes", "No"])[0] for i in range(3)]

    def cast(poll):
        choice = poll.choices.first()
        try:
            services.vote_cast(poll=poll, choice_ids=[choice.id], voter_key="v", ip_address="198.51.100.30")
        except RateLimited:
            return "limited"
        return "counted"

    assert [cast(poll) for poll in polls] == ["counted", "counted", "limited"]


@pytest.mark.django_db
def test_the_create_service_refuses_an_address_past_the_limit():
    def create():
        try:
            services.poll_create(question="Q?", choices=["Yes", "No"], ip_address="198.51.100.31")
        except RateLimited:
            return "limited"
        return "created"

    assert [create() for _ in range(4)] == ["created", "created", "created", "limited"]
    assert Poll.objects.count() == 3
