"""Security, point by point (issue 7): CSP, CSRF and cross-site requests, XSS, CSV injection,
owner tokens, and the headers every page sends. Each test fails when its protection is removed.

Browser checks live in test_security_browser.py; checks of production settings and of the real
servers' logs in test_security_deploy.py.
"""

import csv
import hmac
import io
import logging
from dataclasses import dataclass
from itertools import product

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from django.urls import URLResolver, get_resolver, reverse

from crowdtick.asgi import application
from crowdtick.tests.security_helpers import (
    FORMULA_CHOICES,
    HTMX_PAYLOAD,
    IMG_PAYLOAD,
    csp_directives,
    elements,
    htmx_config,
    injected_elements,
    make_hostile_event,
    make_hostile_poll,
)
from polls import jobs, services
from polls.models import Event, Poll
from polls.ratelimit import SLICES

pytestmark = pytest.mark.django_db

SAFE_ORIGIN = "http://testserver"
FOREIGN_ORIGIN = "http://evil.example"


@pytest.fixture
def poll_and_token():
    return services.poll_create(question="Tea or coffee?", choices=["Tea", "Coffee"])


def html_pages(poll, token) -> dict[str, str]:
    slug = poll.slug
    return {
        "landing": "/",
        "poll": f"/p/{slug}/",
        "results": f"/p/{slug}/results/",
        "live": f"/p/{slug}/live/",
        "owner": f"/p/{slug}/manage/{token}/",
        "delete confirmation": f"/p/{slug}/manage/{token}/delete/",
        "export": f"/p/{slug}/manage/{token}/export/",
        "not found": "/p/nosuchpoll/",
    }


def choice_ids(poll) -> list[int]:
    return [choice.id for choice in poll.choices.all()]


# --- Content-Security-Policy ------------------------------------------------------------


def test_every_html_page_sends_a_strict_content_security_policy(client, poll_and_token):
    for name, url in html_pages(*poll_and_token).items():
        response = client.get(url)
        assert response["Content-Type"].startswith("text/html"), name
        policy = csp_directives(response["Content-Security-Policy"])
        assert policy["object-src"] == ["'none'"], name
        assert policy["base-uri"] in (["'none'"], ["'self'"]), name
        assert "'self'" in policy["script-src"], name
        for unsafe in ("'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:"):
            assert unsafe not in policy["script-src"], (name, unsafe)
        assert "'unsafe-eval'" not in policy.get("default-src", []), name


def test_every_script_a_page_emits_is_same_origin_or_carries_the_nonce(client, poll_and_token):
    for name, url in html_pages(*poll_and_token).items():
        response = client.get(url)
        script_src = csp_directives(response["Content-Security-Policy"])["script-src"]
        scripts = [attrs for tag, attrs in elements(response.content.decode()) if tag == "script"]
        assert scripts, name
        for attrs in scripts:
            if "src" in attrs:
                assert attrs["src"].startswith("/static/"), (name, attrs)
            else:
                assert attrs.get("nonce") and f"'nonce-{attrs['nonce']}'" in script_src, (name, attrs)
        handlers = [(tag, attr) for tag, attrs in elements(response.content.decode()) for attr in attrs]
        assert not [h for h in handlers if h[1].startswith("on")], (name, "inline event handlers are blocked")


def test_a_template_that_uses_the_nonce_gets_it_into_the_header(rf):
    # The pages need no inline script today; this keeps the nonce machinery ready for one.
    from django.middleware.csp import ContentSecurityPolicyMiddleware
    from django.template import engines

    template = engines["django"].from_string("<script nonce='{{ csp_nonce }}'>1</script>")

    def view(request):
        from django.http import HttpResponse

        return HttpResponse(template.render({}, request))

    response = ContentSecurityPolicyMiddleware(view)(rf.get("/"))
    nonce = response.content.decode().split("'")[1]
    assert nonce and f"'nonce-{nonce}'" in csp_directives(response["Content-Security-Policy"])["script-src"]


def test_htmx_is_configured_to_work_under_the_policy(client):
    config = htmx_config(client.get("/").content.decode())
    # Without these, htmx evaluates strings (hx-vars, trigger filters) and injects a <style>: both blocked.
    assert config["allowEval"] is False
    assert config["includeIndicatorStyles"] is False
    assert config.get("allowScriptTags") is False


# --- CSRF and cross-site requests --------------------------------------------------------


@pytest.fixture
def csrf_client():
    return Client(enforce_csrf_checks=True)


def owner_posts(poll, token) -> dict[str, tuple[str, dict]]:
    base = f"/p/{poll.slug}/manage/{token}"
    return {
        "close": (f"{base}/close/", {}),
        "reopen": (f"{base}/reopen/", {}),
        "settings": (f"{base}/settings/", {"results_visibility": "after_close"}),
        "export": (f"{base}/export/", {}),
        "delete": (f"{base}/delete/", {}),
    }


def every_form_post(poll, token) -> dict[str, tuple[str, dict, dict]]:
    """Each form's POST with a valid body, and the headers an HTMX request would add."""
    vote = (f"/p/{poll.slug}/vote/", {"choice": choice_ids(poll)[0]})
    create = ("/polls/new/", {"question": "Q?", "choices": ["A", "B"], "results_visibility": "always", "dedupe": "ip"})
    posts = {"create": (*create, {}), "vote": (*vote, {}), "vote (htmx)": (*vote, {"HX-Request": "true"})}
    return posts | {name: (url, data, {}) for name, (url, data) in owner_posts(poll, token).items()}


def test_every_form_refuses_a_post_without_the_csrf_token(csrf_client, poll_and_token):
    poll, token = poll_and_token
    for name, (url, data, headers) in every_form_post(poll, token).items():
        response = csrf_client.post(url, data, headers=headers)
        assert response.status_code == 403, name
    poll.refresh_from_db()
    assert not poll.closed and poll.ballots.count() == 0


def csrf_token_of(client, url) -> str:
    page = client.get(url).content.decode()
    inputs = [attrs for tag, attrs in elements(page) if attrs.get("name") == "csrfmiddlewaretoken"]
    assert inputs, f"{url} has no form with a CSRF token"
    return inputs[0]["value"]


def test_every_form_accepts_its_own_token(csrf_client, poll_and_token):
    # The other half of the test above: the 403s come from the missing token, not from a broken form.
    poll, token = poll_and_token
    forms_on = {
        "create": "/",
        "vote": f"/p/{poll.slug}/",
        "vote (htmx)": f"/p/{poll.slug}/",
        "export": f"/p/{poll.slug}/manage/{token}/export/",
    }
    posts = every_form_post(poll, token)
    for name in ("create", "vote (htmx)", "settings", "close", "reopen", "export", "delete"):
        url, data, headers = posts[name]
        page = forms_on.get(name, f"/p/{poll.slug}/manage/{token}/")
        data = data | {"csrfmiddlewaretoken": csrf_token_of(csrf_client, page)}
        response = csrf_client.post(url, data, headers=headers | {"Origin": SAFE_ORIGIN})
        assert response.status_code in (200, 302), (name, response.status_code)
    assert not Poll.objects.filter(pk=poll.pk).exists()


def test_a_vote_posted_from_another_site_is_refused_even_with_a_valid_token(csrf_client, poll_and_token):
    poll, _ = poll_and_token
    token = csrf_token_of(csrf_client, f"/p/{poll.slug}/")
    data = {"choice": choice_ids(poll)[0], "csrfmiddlewaretoken": token}
    for hx in ({}, {"HX-Request": "true"}):
        response = csrf_client.post(f"/p/{poll.slug}/vote/", data, headers=hx | {"Origin": FOREIGN_ORIGIN})
        assert response.status_code == 403
    # Over HTTPS a browser that sends no Origin is judged by its Referer.
    foreign_referer = {"Referer": f"{FOREIGN_ORIGIN.replace('http:', 'https:')}/page"}
    response = csrf_client.post(f"/p/{poll.slug}/vote/", data, headers=foreign_referer, secure=True)
    assert response.status_code == 403
    assert poll.ballots.count() == 0
    response = csrf_client.post(f"/p/{poll.slug}/vote/", data, headers={"Origin": SAFE_ORIGIN})
    assert response.status_code == 302 and poll.ballots.count() == 1


def api_vote(client, poll, voter, **headers):
    body = {"poll": poll.slug, "choices": choice_ids(poll)[:1], "voter": voter}
    return client.post("/api/votes/", body, content_type="application/json", headers=headers)


def test_an_api_vote_from_another_site_is_refused_and_programs_without_origin_are_not(client, poll_and_token):
    poll, _ = poll_and_token
    assert api_vote(client, poll, "browser-on-evil-site", Origin=FOREIGN_ORIGIN).status_code == 403
    assert api_vote(client, poll, "a-program").status_code == 201
    assert api_vote(client, poll, "this-site", Origin=SAFE_ORIGIN).status_code == 201
    assert poll.ballots.count() == 2


def websocket_accepts(path: str, headers: list[tuple[bytes, bytes]]) -> bool:
    async def handshake():
        ws = WebsocketCommunicator(application, path, headers=headers)
        connected, _ = await ws.connect()
        await ws.disconnect()
        return connected

    return async_to_sync(handshake)()


@pytest.mark.django_db(transaction=True)  # consumers' database_sync_to_async closes a test transaction's connection
@pytest.mark.parametrize(
    "origin",
    [
        pytest.param([(b"origin", FOREIGN_ORIGIN.encode())], id="foreign origin"),
        pytest.param([], id="missing origin"),
        pytest.param([(b"origin", b"null")], id="opaque origin"),
    ],
)
def test_a_websocket_handshake_from_elsewhere_is_refused(poll_and_token, origin):
    poll, token = poll_and_token
    host = [(b"host", b"127.0.0.1:8000")]
    for path in (f"/ws/polls/{poll.slug}/", f"/ws/polls/{poll.slug}/manage/{token}/"):
        assert not websocket_accepts(path, host + origin), path
    assert websocket_accepts(f"/ws/polls/{poll.slug}/", host + [(b"origin", b"http://127.0.0.1:8000")])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("scheme", "host", "origin", "accepted"),
    [
        pytest.param("ws", "127.0.0.1:8000", "http://127.0.0.1:8000", True, id="same origin"),
        pytest.param("ws", "localhost", "http://localhost:80", True, id="same origin, default port spelled out"),
        pytest.param("wss", "example.com", "https://example.com", True, id="same origin over TLS"),
        pytest.param("ws", "127.0.0.1:8000", "http://127.0.0.1:9999", False, id="another port"),
        pytest.param("ws", "127.0.0.1:8000", "https://127.0.0.1:8000", False, id="another scheme"),
        pytest.param("wss", "example.com", "http://example.com", False, id="plain-HTTP twin of a TLS site"),
        pytest.param("ws", "127.0.0.1:8000", "http://localhost:8000", False, id="another allowed host"),
        pytest.param("ws", "evil.example", "http://evil.example", False, id="same origin on a host not allowed"),
        pytest.param("ws", "127.0.0.1:8000", "http://trusted.example:8443", True, id="CSRF_TRUSTED_ORIGINS"),
    ],
)
def test_a_websocket_handshake_is_accepted_only_from_the_same_scheme_host_and_port(
    settings, poll_and_token, scheme, host, origin, accepted
):
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "example.com"]
    settings.CSRF_TRUSTED_ORIGINS = ["http://trusted.example:8443"]
    poll, _ = poll_and_token

    async def handshake():
        headers = [(b"host", host.encode()), (b"origin", origin.encode())]
        ws = WebsocketCommunicator(application, f"/ws/polls/{poll.slug}/", headers=headers)
        ws.scope["scheme"] = scheme
        connected, _ = await ws.connect()
        await ws.disconnect()
        return connected

    assert async_to_sync(handshake)() is accepted


@pytest.mark.django_db(transaction=True)
def test_unknown_websocket_paths_are_refused_at_the_handshake_without_a_traceback_or_the_token(
    poll_and_token, caplog
):
    poll, token = poll_and_token
    caplog.set_level(logging.DEBUG)
    headers = [(b"host", b"127.0.0.1:8000"), (b"origin", b"http://127.0.0.1:8000")]
    paths = ["/ws/", "/ws/nothing/", "/ws/polls/", f"/ws/polls/{poll.slug}", f"/ws/polls/{poll.slug}/manage/{token}"]
    for path in paths:  # the last two: the trailing slash forgotten
        assert not websocket_accepts(path, headers), path
    assert [record for record in caplog.records if record.exc_info or record.exc_text] == []
    assert token not in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_websocket_message_over_4_kib_closes_the_socket(poll_and_token):
    poll, _ = poll_and_token

    async def send(size: int) -> dict | None:
        headers = [(b"host", b"127.0.0.1:8000"), (b"origin", b"http://127.0.0.1:8000")]
        ws = WebsocketCommunicator(application, f"/ws/polls/{poll.slug}/", headers=headers)
        assert (await ws.connect())[0]
        await ws.receive_from(timeout=3)  # the snapshot
        await ws.send_to(text_data="é" * (size // 2))  # two bytes each in UTF-8: counted in bytes
        output = None if await ws.receive_nothing(timeout=0.3) else await ws.receive_output(timeout=1)
        await ws.disconnect()
        return output

    assert async_to_sync(send)(4096) is None
    assert async_to_sync(send)(4098) == {"type": "websocket.close", "code": 1009}


# --- Hostile input: XSS and CSV formulas -------------------------------------------------


# Every page is reached from the URL list, so a URL added later is covered, or the test below fails
# naming it. What the list cannot tell, by the URL's name:
URL_ARGUMENTS = {
    "slug": lambda subject: subject.poll.slug,
    "id": lambda subject: subject.event.slug if subject.event else subject.poll.slug,
    "token": lambda subject: subject.token,
    "code": lambda subject: subject.event.code,
}


@dataclass(frozen=True)
class Subject:
    """What a URL is reached on: a hostile poll, or for an event's URLs a hostile event on its first question."""

    poll: Poll
    token: str
    event: Event | None = None

    def url(self, name: str, arguments) -> str:
        return reverse(name, kwargs={argument: URL_ARGUMENTS[argument](self) for argument in arguments})


def hostile_subject(name: str) -> Subject:
    if name.startswith(("web:event", "api:event", "web:join")):
        event, poll, token = make_hostile_event()
        return Subject(poll, token, event)
    if name in WORD_CLOUD_URLS:
        return Subject(*make_hostile_poll(kind="words", choices=[]))
    return Subject(*make_hostile_poll())


WORD_CLOUD_URLS = {"web:manage_words"}  # only a word cloud has them
HOSTILE_TERMS = [IMG_PAYLOAD[:40], HTMX_PAYLOAD[:40]]

# URLs whose answers carry no visitor's text (they are still checked for injected elements).
WITHOUT_VISITOR_TEXT = {
    "web:landing",
    "web:choice_row",
    "web:healthz",
    "web:favicon",
    "web:readyz",
    "api:schema",
    "api:docs",
    "api:vote_cast",
    "web:join",
    "web:event_phones",
    "api:event_control",
}
QUERIES = {"web:live": ["", "?overlay=1"]}  # the overlay is the same URL, another page
BEFORE = {"web:manage_export_file": lambda poll: jobs.poll_export_start(poll=poll)}  # embedded: written at once


def post_requests(subject: Subject) -> dict[str, dict]:
    """What a visitor posts to each URL that takes a POST: its body, as a form or as JSON."""
    poll = subject.poll
    first = next(iter(choice_ids(poll)), None)  # None for a word cloud, whose ballots carry words
    choices = [IMG_PAYLOAD, HTMX_PAYLOAD]
    create = {"question": poll.question, "choices": choices, "results_visibility": "always", "dedupe": "none"}
    api_vote = {"poll": poll.slug, "choices": choice_ids(poll)[:1], "voter": "v"}
    return {
        "web:poll_create": {"data": create},
        "web:vote": {"data": {"choice": first}},
        "web:manage_close": {"data": {}},
        "web:manage_reopen": {"data": {}},
        "web:manage_settings": {"data": {"results_visibility": "after_close"}},
        "web:manage_words": {"data": {"action": "hide", "term": IMG_PAYLOAD}},
        "web:manage_delete": {"data": {}},
        "web:manage_export_prepare": {"data": {}},
        "web:manage_void": {"data": {"network": "0" * 64, "minute": 0}},  # a burst with no ballot: voids none
        "api:poll_create": {
            "data": {"question": poll.question, "choices": choices},
            "content_type": "application/json",
        },
        "api:vote_cast": {"data": api_vote, "content_type": "application/json"},
        "web:event_create": {"data": {"title": IMG_PAYLOAD, "questions": f"{HTMX_PAYLOAD}\n{IMG_PAYLOAD}\nB"}},
        "web:event_vote": {"data": {"question": poll.slug, "choice": first}},
        "web:event_control": {"data": {"action": "close"}},
        "api:event_create": {
            "data": {"title": IMG_PAYLOAD, "questions": [{"question": HTMX_PAYLOAD, "choices": choices}]},
            "content_type": "application/json",
        },
        "api:event_control": {
            "data": {"action": "close"},
            "content_type": "application/json",
            "headers": {"Authorization": f"Bearer {subject.token}"},
        },
    }


def named_url_patterns(patterns=None, namespace="", arguments=()):
    """(namespaced name, argument names) of every URL pattern of the site."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        found = (*arguments, *(getattr(entry.pattern, "converters", None) or entry.pattern.regex.groupindex))
        if isinstance(entry, URLResolver):
            yield from named_url_patterns(
                entry.url_patterns, f"{namespace}{entry.namespace}:" * bool(entry.namespace) or namespace, found
            )
        else:
            assert entry.name, f"{entry.pattern} has no name: name it so this test can say which page fails"
            yield f"{namespace}{entry.name}", found


def body_of(response) -> str:
    return (b"".join(response.streaming_content) if response.streaming else response.content).decode()


def reach(name, arguments, method, query, headers):
    """Requests `name` on a fresh hostile poll with a ballot; returns what the request was and the answer."""
    subject = hostile_subject(name)
    poll = subject.poll
    words = HOSTILE_TERMS if poll.is_words else None
    services.vote_cast(
        poll=poll, choice_ids=choice_ids(poll)[:1], words=words, voter_key=f"v-{poll.slug}", ip_address=None
    )
    BEFORE.get(name, lambda poll: None)(poll)
    url = subject.url(name, arguments) + query
    request = f"{method} {url} {'with' if headers else 'without'} HTMX"
    if method == "GET":
        return request, Client().get(url, headers=headers, follow=True)
    posts = post_requests(subject)
    post = posts.get(name, {"data": {}})
    post = post | {"headers": headers | post.get("headers", {})}
    response = Client().post(url, follow=True, **post)
    assert name in posts or response.status_code == 405, f"does not know what to post to {name} ({request})"
    return request, response


def test_script_in_visitors_text_is_inert_on_every_page_with_every_method_it_takes(export_root, embedded):
    for name, arguments in named_url_patterns():
        assert set(arguments) <= URL_ARGUMENTS.keys(), f"does not know how to fill {arguments} of {name}"
        accepted, shown = [], []
        for method, query, headers in product(("GET", "POST"), QUERIES.get(name, [""]), ({}, {"HX-Request": "true"})):
            request, response = reach(name, arguments, method, query, headers)
            if response.status_code == 405:
                continue
            accepted.append(request)
            assert response.status_code < 400, f"{request} answered {response.status_code}"
            body = body_of(response)
            if response["Content-Type"].startswith(("text/html", "image/svg+xml")):
                assert injected_elements(body) == [], request
                shown += [request] * ("&lt;img src=x onerror=alert(1)&gt;" in body)
            else:  # text a browser shows as text, never sniffs into a page
                assert response["X-Content-Type-Options"] == "nosniff", request
                shown += [request] * (IMG_PAYLOAD in body)
        assert accepted, f"does not know how to reach {name}: it answers neither GET nor POST"
        assert shown or name in WITHOUT_VISITOR_TEXT, f"no answer of {name} shows the poll's text: {accepted}"


# --- No request gives a 500 (issue 15) ---------------------------------------------------

EVERY_METHOD = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


def too_many_fields() -> str:
    return "&".join(f"f{number}=1" for number in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))


def test_no_request_gives_a_500_with_any_method_on_any_page_nor_logs_a_traceback(export_root, embedded, caplog):
    caplog.set_level(logging.INFO)
    crowded_query, crowded_form = f"?{too_many_fields()}", too_many_fields()
    form = "application/x-www-form-urlencoded"
    for name, arguments in named_url_patterns():
        for method, query, body in product(EVERY_METHOD, ("", crowded_query), ("", crowded_form)):
            subject = hostile_subject(name)  # a fresh one each time: DELETE or POST may delete it
            BEFORE.get(name, lambda poll: None)(subject.poll)
            url = subject.url(name, arguments)
            request = f"{method} {url}{'?<too many parameters>' * bool(query)}{' <too many fields>' * bool(body)}"
            response = Client(raise_request_exception=False).generic(method, url + query, body, content_type=form)
            assert response.status_code < 500, f"{request} answered {response.status_code}"
            if query and response.status_code == 400 and body_of(response) and "html" not in response["Content-Type"]:
                assert "Too many query parameters" in body_of(response), request  # JSON, or the schema's YAML
        subject = hostile_subject(name)
        poll = subject.poll
        BEFORE.get(name, lambda poll: None)(poll)
        url = subject.url(name, arguments)
        head = Client().head(url)
        assert Poll.objects.filter(pk=poll.pk).exists(), f"HEAD {url} changed something"
        get = Client().get(url)
        assert (head.status_code, head.get("Content-Type")) == (get.status_code, get.get("Content-Type")), name
        assert body_of(head) == "", name
    tracebacks = [record.getMessage() for record in caplog.records if record.exc_info or record.exc_text]
    assert tracebacks == []


def test_too_many_query_parameters_get_a_400_that_says_so_in_json_and_in_html(client, settings, poll_and_token):
    poll, _ = poll_and_token
    crowded = f"?{too_many_fields()}"
    for url in (f"/api/polls/{poll.slug}/", f"/api/polls/{poll.slug}/results/"):
        response = client.get(url + crowded)
        assert response.status_code == 400, url
        assert response.json() == {"detail": "Too many query parameters: at most 1,000 are accepted."}, url
    response = client.post(f"/api/votes/{crowded}", {"poll": poll.slug}, content_type="application/json")
    assert response.status_code == 400 and "Too many query parameters" in response.json()["detail"]
    for debug in (False, True):  # DEBUG=1 (make run for development) gives its debug page, a 400 too
        settings.DEBUG = debug
        response = Client(raise_request_exception=False).get(f"/p/{poll.slug}/live/{crowded}")
        assert response.status_code == 400 and response["Content-Type"].startswith("text/html"), debug


def test_script_in_choices_is_inert_in_the_htmx_fragment_after_a_vote(client):
    poll, _ = make_hostile_poll()
    img_choice = choice_ids(poll)[0]
    response = client.post(f"/p/{poll.slug}/vote/", {"choice": img_choice}, headers={"HX-Request": "true"})
    fragment = response.content.decode()
    assert response.status_code == 200 and "<html" not in fragment
    assert "&lt;div hx-get=/x hx-trigger=load&gt;" in fragment
    assert injected_elements(fragment) == []


@pytest.mark.django_db(transaction=True)
def test_script_in_choices_is_inert_in_the_websocket_push(client):
    poll, _ = make_hostile_poll()
    client.post(f"/p/{poll.slug}/vote/", {"choice": choice_ids(poll)[1]})

    async def snapshot():
        headers = [(b"host", b"127.0.0.1:8000"), (b"origin", b"http://127.0.0.1:8000")]
        ws = WebsocketCommunicator(application, f"/ws/polls/{poll.slug}/", headers=headers)
        connected, _ = await ws.connect()
        assert connected
        pushed = await ws.receive_from(timeout=3)
        await ws.disconnect()
        return pushed

    pushed = async_to_sync(snapshot)()
    assert "&lt;img src=x onerror=alert(1)&gt;" in pushed
    assert injected_elements(pushed) == []


def exported_rows(client, poll, token) -> list[list[str]]:
    response = client.get(f"/p/{poll.slug}/manage/{token}/export.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment")
    assert response["X-Content-Type-Options"] == "nosniff"
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_csv_export_neutralises_formulas_and_keeps_markup_as_text(client):
    poll, token = make_hostile_poll()
    for choice_id in choice_ids(poll):
        Client().post(f"/p/{poll.slug}/vote/", {"choice": choice_id})
    header, *rows = exported_rows(client, poll, token)
    assert header == ["submitted_at", "choices"]
    cells = sorted(row[1] for row in rows)
    assert len(cells) == 2 + len(FORMULA_CHOICES)
    for cell in cells:
        assert not cell.startswith(("=", "+", "-", "@")), cell
    # Neutralised by a leading apostrophe, the text itself kept for the owner to read.
    assert sorted(f"'{text}" for text in FORMULA_CHOICES) == sorted(c for c in cells if c.startswith("'"))
    assert IMG_PAYLOAD in cells and HTMX_PAYLOAD in cells


# --- Owner tokens -----------------------------------------------------------------------


def test_owner_tokens_carry_at_least_128_random_bits():
    tokens = {services.poll_create(question="Q?", choices=["A", "B"])[1] for _ in range(20)}
    assert len(tokens) == 20
    for token in tokens:
        alphabet = set(token)
        assert alphabet <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        assert len(token) * 6 >= 128


def test_owner_tokens_are_stored_only_as_a_hash(poll_and_token):
    poll, token = poll_and_token
    stored = Poll.objects.filter(pk=poll.pk).values().get()
    assert not [field for field, value in stored.items() if token in str(value)]
    assert stored["owner_token_hash"] and len(stored["owner_token_hash"]) == 64


def near_miss(token: str) -> str:
    """The token with its last character changed (never to itself: 1 token in 64 ends in "A")."""
    return token[:-1] + ("B" if token.endswith("A") else "A")


def test_owner_tokens_are_compared_in_constant_time(client, poll_and_token, monkeypatch):
    poll, token = poll_and_token
    comparisons = []

    def spying_compare_digest(a, b):
        comparisons.append((a, b))
        return real_compare_digest(a, b)

    real_compare_digest = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", spying_compare_digest)
    assert client.get(f"/p/{poll.slug}/manage/{token}/").status_code == 200
    assert client.get(f"/p/{poll.slug}/manage/{near_miss(token)}/").status_code == 404
    assert [poll.owner_token_hash in pair for pair in comparisons].count(True) == 2


def test_owner_tokens_never_reach_the_logs(client, poll_and_token, caplog):
    poll, token = poll_and_token
    base = f"/p/{poll.slug}/manage/{token}"
    caplog.set_level(logging.DEBUG)
    client.get(f"{base}/")
    client.post(f"{base}/settings/", {"closes_at": "not a date", "results_visibility": "always"})  # 400: logged
    Client(enforce_csrf_checks=True).post(f"{base}/close/")  # 403 CSRF: logged with its path
    client.get(f"{base}/export.csv")
    client.get(f"/p/{poll.slug}/manage/{near_miss(token)}/")  # a near miss: 404, logged
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert token not in logged and token[:-1] not in logged
    # The requests were logged, with the token masked: the test would see a leak.
    assert f"/p/{poll.slug}/manage/[redacted]/settings/" in logged
    assert f"/p/{poll.slug}/manage/[redacted]/close/" in logged


def test_owner_tokens_never_reach_the_logs_whatever_the_case_of_the_path_nor_in_tracebacks(
    client, poll_and_token, caplog
):
    poll, token = poll_and_token
    caplog.set_level(logging.DEBUG)
    assert client.get(f"/p/{poll.slug}/MANAGE/{token}/").status_code == 404  # logged as "Not Found: <path>"
    try:  # as Channels' router raises for an owner path it has no route for
        raise ValueError(f"No route found for path 'ws/polls/{poll.slug}/Manage/{token}'")
    except ValueError:
        logging.getLogger("crowdtick.test").exception("Exception inside application")
    logged = caplog.text  # formatted as handlers write them, tracebacks included
    assert token not in logged
    assert f"/p/{poll.slug}/MANAGE/[redacted]/" in logged
    assert f"No route found for path 'ws/polls/{poll.slug}/Manage/[redacted]'" in logged


def test_owner_pages_keep_the_token_out_of_referers_and_caches(client, poll_and_token):
    poll, token = poll_and_token
    base = f"/p/{poll.slug}/manage/{token}"
    for url in (f"{base}/", f"{base}/delete/", f"{base}/export.csv", f"{base}/?created=1"):
        response = client.get(url)
        # Links and subresources from the owner page may not tell other sites its address.
        assert response["Referrer-Policy"] in ("same-origin", "no-referrer", "strict-origin", "origin"), url
        directives = {part.strip() for part in response["Cache-Control"].split(",")}
        assert {"no-store", "private"} <= directives, url
    # Public pages stay cacheable by the browser (nothing above applies to them).
    assert "no-store" not in client.get(f"/p/{poll.slug}/").get("Cache-Control", "")


def test_public_pages_and_the_api_show_neither_the_owner_token_nor_its_hash(client, poll_and_token):
    poll, token = poll_and_token
    public = {name: url for name, url in html_pages(poll, token).items() if "/manage/" not in url}
    public |= {"overlay": f"/p/{poll.slug}/live/?overlay=1", "qr": f"/p/{poll.slug}/qr.svg"}
    public["vote (htmx)"] = f"/p/{poll.slug}/vote/"
    for name, url in public.items():
        if name == "vote (htmx)":
            response = client.post(url, {"choice": choice_ids(poll)[0]}, headers={"HX-Request": "true"})
        else:
            response = client.get(url)
        assert token not in response.content.decode(), name
        assert poll.owner_token_hash not in response.content.decode(), name
    api = client.get(f"/api/polls/{poll.slug}/")
    assert token not in api.content.decode() and poll.owner_token_hash not in api.content.decode()
    assert token in client.get(f"/p/{poll.slug}/manage/{token}/").content.decode()


def test_a_forged_host_header_cannot_poison_share_links(client, poll_and_token):
    # Share links and QR codes are built from the request's host: only the site's own names may be used.
    poll, _ = poll_and_token
    for url in (f"/p/{poll.slug}/", f"/p/{poll.slug}/qr.svg", f"/p/{poll.slug}/live/"):
        response = client.get(url, headers={"Host": "evil.example"})
        assert response.status_code == 400, url
        assert b"evil.example" not in response.content


def test_the_voter_cookie_is_signed_and_hidden_from_scripts(client, poll_and_token):
    poll, _ = poll_and_token
    response = client.post(f"/p/{poll.slug}/vote/", {"choice": choice_ids(poll)[0]})
    cookie = response.cookies["ct_voter"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    # A key the browser chose is not an identity: the site mints its own and signs it.
    forged = Client()
    forged.cookies["ct_voter"] = "chosen-by-the-client"
    again = forged.post(f"/p/{poll.slug}/vote/", {"choice": choice_ids(poll)[1]})
    assert again.status_code == 302
    assert set(poll.ballots.values_list("voter_key", flat=True)).isdisjoint({"chosen-by-the-client"})


# --- Security headers -------------------------------------------------------------------


def test_every_page_sends_nosniff_a_referrer_policy_and_refuses_to_be_framed(client, poll_and_token):
    for name, url in html_pages(*poll_and_token).items():
        response = client.get(url)
        assert response["X-Content-Type-Options"] == "nosniff", name
        assert response["Referrer-Policy"] == "same-origin", name
        assert response["X-Frame-Options"] == "DENY", name
        assert csp_directives(response["Content-Security-Policy"])["frame-ancestors"] == ["'none'"], name


def test_the_overlay_page_may_be_framed_and_only_it(client, poll_and_token):
    poll, _ = poll_and_token
    overlay = client.get(f"/p/{poll.slug}/live/?overlay=1")
    frame_ancestors = csp_directives(overlay["Content-Security-Policy"]).get("frame-ancestors", ["*"])
    assert frame_ancestors != ["'none'"]
    # X-Frame-Options cannot say "these sites", and browsers honour a DENY over the CSP in some cases.
    assert "X-Frame-Options" not in overlay
    # Framable means clickable by a page on top: the overlay has nothing to click.
    assert not [tag for tag, _ in elements(overlay.content.decode()) if tag in ("form", "button", "input")]
    # The kiosk without the overlay flag is a normal page.
    kiosk = client.get(f"/p/{poll.slug}/live/")
    assert kiosk["X-Frame-Options"] == "DENY"
    assert csp_directives(kiosk["Content-Security-Policy"])["frame-ancestors"] == ["'none'"]


# --- Rate limits ------------------------------------------------------------------------

SMALL_LIMITS = {
    "RATELIMIT_ENABLE": True,
    "RATELIMIT_WINDOW": 3600,  # long, so no test straddles a window boundary (a 60 s one failed once in CI)
    "RATELIMIT_VOTES_PER_VOTER": 3,
    "RATELIMIT_VOTES_PER_ADDRESS": 5,
    "RATELIMIT_POLLS_PER_ADDRESS": 2,
}


@pytest.fixture
def small_limits(settings):
    # Every test starts with empty counters: conftest empties Redis and hands out fresh in-process ones.
    for name, value in SMALL_LIMITS.items():
        setattr(settings, name, value)


def assert_rate_limited(response) -> None:
    assert response.status_code == 429, response.status_code
    assert 1 <= int(response["Retry-After"]) <= SMALL_LIMITS["RATELIMIT_WINDOW"] * (1 + 1 / SLICES)


def open_poll():
    return services.poll_create(question="Again?", choices=["Yes", "No"], dedupe="none")[0]


def api_create(client, address):
    body = {"question": "New?", "choices": ["A", "B"]}
    return client.post("/api/polls/", body, content_type="application/json", REMOTE_ADDR=address)


def html_create(client, address):
    body = {"question": "New?", "choices": ["A", "B"], "results_visibility": "always", "dedupe": "browser"}
    return client.post("/polls/new/", body, REMOTE_ADDR=address)


def api_vote_from(client, poll, voter, address):
    body = {"poll": poll.slug, "choices": choice_ids(poll)[:1], "voter": voter}
    return client.post("/api/votes/", body, content_type="application/json", REMOTE_ADDR=address)


def html_vote_from(client, poll, address, **headers):
    return client.post(f"/p/{poll.slug}/vote/", {"choice": choice_ids(poll)[0]}, REMOTE_ADDR=address, headers=headers)


def test_api_poll_creation_is_limited_per_address(client, small_limits):
    assert [api_create(client, "192.0.2.1").status_code for _ in range(2)] == [201, 201]
    assert_rate_limited(api_create(client, "192.0.2.1"))
    assert api_create(client, "192.0.2.2").status_code == 201


def test_html_poll_creation_is_limited_per_address(client, small_limits):
    assert [html_create(client, "192.0.2.1").status_code for _ in range(2)] == [302, 302]
    assert_rate_limited(html_create(client, "192.0.2.1"))
    assert html_create(client, "192.0.2.2").status_code == 302
    assert Poll.objects.count() == 3


def test_api_votes_are_limited_per_voter_and_per_address(client, small_limits):
    poll = open_poll()
    assert [api_vote_from(client, poll, "one-voter", f"192.0.2.{n}").status_code for n in range(3)] == [201] * 3
    assert_rate_limited(api_vote_from(client, poll, "one-voter", "192.0.2.99"))  # a new address does not help
    # Many voters behind one address share its (larger) budget.
    assert [api_vote_from(client, poll, f"voter-{n}", "198.51.100.7").status_code for n in range(5)] == [201] * 5
    assert_rate_limited(api_vote_from(client, poll, "voter-new", "198.51.100.7"))
    assert poll.ballots.count() == 8


def test_ipv6_clients_are_counted_by_their_64(client, small_limits):
    poll = open_poll()
    same_64 = [f"2001:db8:1:2::{n:x}" for n in range(1, 7)]
    statuses = [api_vote_from(client, poll, f"voter-{n}", address).status_code for n, address in enumerate(same_64)]
    assert statuses == [201] * 5 + [429]
    assert api_vote_from(client, poll, "next-door", "2001:db8:1:3::1").status_code == 201


def test_html_votes_are_limited_per_voter_with_and_without_htmx(client, small_limits):
    poll = open_poll()
    statuses = [html_vote_from(client, poll, f"192.0.2.{n}").status_code for n in range(3)]
    assert statuses == [302] * 3
    assert_rate_limited(html_vote_from(client, poll, "192.0.2.50"))
    limited = html_vote_from(client, poll, "192.0.2.51", HX_Request="true")
    assert_rate_limited(limited)
    assert "<html" not in limited.content.decode() and "Try again" in limited.content.decode()


def test_html_votes_are_limited_per_address(small_limits):
    poll = open_poll()
    statuses = [html_vote_from(Client(), poll, "198.51.100.7").status_code for _ in range(5)]
    assert statuses == [302] * 5
    assert_rate_limited(html_vote_from(Client(), poll, "198.51.100.7"))


def test_with_redis_unreachable_votes_and_new_polls_are_still_served(client, small_limits, monkeypatch, caplog):
    """The deliberate behaviour: rate limits fail open (and say so in the log); nothing answers 500."""
    import redis

    import polls.ratelimit

    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5, socket_timeout=0.5)
    monkeypatch.setattr(polls.ratelimit, "get_redis", lambda: dead)
    poll = open_poll()
    answers = [api_vote_from(client, poll, "one-voter", "192.0.2.1").status_code for _ in range(5)]
    answers += [html_vote_from(client, poll, "192.0.2.1").status_code for _ in range(5)]
    answers += [api_create(client, "192.0.2.1").status_code for _ in range(3)]
    answers += [html_create(client, "192.0.2.1").status_code for _ in range(3)]
    assert answers == [201] * 5 + [302] * 5 + [201] * 3 + [302] * 3
    assert "Rate limits are not enforced" in caplog.text
