"""The owner page's ballot audit and the void form, with and without HTMX."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from polls import ballot_audit, services
from polls.models import Ballot
from web.tests.conftest import HTMX

HTMX_CASES = pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])


@pytest.fixture
def stuffed(poll):
    """A poll with a few honest ballots and a flagged burst from one network five minutes ago."""
    minute = (timezone.now() - timedelta(minutes=5)).replace(second=0, microsecond=0)
    for index in range(3):
        Client(REMOTE_ADDR=f"10.0.0.{index + 1}").post(poll.url("vote/"), {"choice": [poll.choice_ids[0]]})
    for _ in range(ballot_audit.BURST_MIN_BALLOTS):
        Client(REMOTE_ADDR="203.0.113.7").post(poll.url("vote/"), {"choice": [poll.choice_ids[1]]})
    network = services.client_address_hash(poll=poll.poll, ip_address="203.0.113.7")
    Ballot.objects.filter(ip_hash=network).update(submitted_at=minute + timedelta(seconds=30))
    assert Ballot.objects.filter(ip_hash=network).count() == ballot_audit.BURST_MIN_BALLOTS
    return poll, network, minute


@pytest.fixture(autouse=True)
def _no_rate_limits(settings):
    settings.RATELIMIT_ENABLE = False


@HTMX_CASES
def test_the_owner_page_shows_the_flagged_burst_with_a_void_form(client, stuffed, headers):
    poll, network, minute = stuffed
    html = client.get(poll.manage_url(), **headers).content.decode()
    assert "Where the ballots come from" in html
    assert f"<strong>{ballot_audit.BURST_MIN_BALLOTS} ballots</strong> from network <code>{network[:10]}</code>" in html
    assert f'name="network" value="{network}"' in html
    assert f'name="minute" value="{int(minute.timestamp()) // 60}"' in html
    assert f"Void these {ballot_audit.BURST_MIN_BALLOTS} ballots" in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert "Their voters still cannot vote again in this poll." in html
    assert "Networks with the most ballots" in html and "Busiest minutes" in html
    assert "style=" not in html  # the CSP forbids inline styles


def test_voiding_without_javascript_redirects_to_the_audit_which_says_what_happened(
    client, stuffed, django_capture_on_commit_callbacks
):
    poll, network, minute = stuffed
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(poll.manage_url("void/"), {"network": network, "minute": int(minute.timestamp()) // 60})
    assert response.status_code == 302
    assert response["Location"] == poll.manage_url() + f"?voided={ballot_audit.BURST_MIN_BALLOTS}#ballot-audit"
    html = client.get(response["Location"]).content.decode()
    assert f"{ballot_audit.BURST_MIN_BALLOTS} ballots voided" in html
    assert "No burst" in html
    assert Ballot.objects.filter(voided_at__isnull=False).count() == ballot_audit.BURST_MIN_BALLOTS
    results = client.get(poll.url("results/")).content.decode()
    assert '<span id="results-total">3</span> votes' in results


def test_voiding_with_htmx_returns_the_audit_alone(client, stuffed):
    poll, network, minute = stuffed
    response = client.post(
        poll.manage_url("void/"), {"network": network, "minute": int(minute.timestamp()) // 60}, **HTMX
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<section class="card ballot-audit" id="ballot-audit"')
    assert f"{ballot_audit.BURST_MIN_BALLOTS} ballots voided" in html
    assert "<html" not in html


def test_the_void_form_needs_the_owner_token_and_a_well_formed_burst(client, stuffed):
    poll, network, minute = stuffed
    form = {"network": network, "minute": int(minute.timestamp()) // 60}
    assert client.post(f"/p/{poll.slug}/manage/not-the-token/void/", form).status_code == 404
    assert client.post(poll.manage_url("void/"), form | {"network": "not-a-hash"}).status_code == 400
    assert client.get(poll.manage_url("void/")).status_code == 405
    assert not Ballot.objects.filter(voided_at__isnull=False).exists()


def test_the_void_form_is_refused_without_its_csrf_token(stuffed):
    poll, network, minute = stuffed
    browser = Client(enforce_csrf_checks=True)
    form = {"network": network, "minute": int(minute.timestamp()) // 60}
    assert browser.post(poll.manage_url("void/"), form).status_code == 403
    assert not Ballot.objects.filter(voided_at__isnull=False).exists()


def test_the_chart_refresh_brings_the_audit_out_of_band(client, stuffed):
    poll, _network, _minute = stuffed
    html = client.get(poll.manage_url("chart/"), **HTMX).content.decode()
    assert html.lstrip().startswith('<section class="card vote-chart" id="vote-chart"')
    assert 'id="ballot-audit" aria-labelledby="ballot-audit-title" hx-swap-oob="true"' in html
    assert f"Void these {ballot_audit.BURST_MIN_BALLOTS} ballots" in html
