"""The JSON API's contract (DESIGN.md): every call, every status code, every error a JSON body."""

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from polls import services
from polls.models import Ballot, Poll
from polls.ratelimit import SLICES

pytestmark = pytest.mark.django_db

HOST = "127.0.0.1:8000"
OWN_ORIGIN = f"http://{HOST}"


@pytest.fixture(autouse=True)
def _long_rate_limit_window(settings):
    settings.RATELIMIT_WINDOW = 3600  # long, so no test straddles a window boundary


@pytest.fixture
def client():
    return Client(HTTP_HOST=HOST)


def post_json(client, path, body, **headers):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(path, data, content_type="application/json", headers=headers)


def make_poll(**kwargs) -> Poll:
    kwargs.setdefault("question", "Tea or coffee?")
    kwargs.setdefault("choices", ["Tea", "Coffee", "Water"])
    return services.poll_create(**kwargs)[0]


def choice_ids(poll) -> list[int]:
    return [choice.id for choice in poll.choices.all()]


def vote(client, poll, picks=None, voter="alice", **headers):
    body = {"poll": poll.slug, "choices": choice_ids(poll)[:1] if picks is None else picks}
    if voter is not None:
        body["voter"] = voter
    return post_json(client, "/api/votes/", body, **headers)


def assert_error(response, status, *, detail_contains="", field=None):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert detail_contains.lower() in body["detail"].lower(), body
    if field:
        assert all(isinstance(message, str) for message in body[field]), body
    return body


# --- POST /api/polls/ -------------------------------------------------------------------


def test_creating_a_poll_answers_201_with_absolute_links_and_the_owner_link_once(client):
    response = post_json(client, "/api/polls/", {"question": "Best talk?", "choices": ["Keynote", "Panel"]})
    assert response.status_code == 201
    body = response.json()
    poll = Poll.objects.get(slug=body["id"])
    assert body["question"] == "Best talk?"
    assert [c["text"] for c in body["choices"]] == ["Keynote", "Panel"]
    assert [c["id"] for c in body["choices"]] == choice_ids(poll)
    assert body["url"] == f"http://{HOST}/p/{poll.slug}/"
    assert body["results_url"] == f"http://{HOST}/p/{poll.slug}/results/"
    assert body["live_url"] == f"http://{HOST}/p/{poll.slug}/live/"
    assert (body["max_choices"], body["dedupe"], body["results_visibility"]) == (1, "browser", "always")
    assert body["closed"] is False
    token = body["manage_url"].rstrip("/").split("/")[-1]
    assert body["manage_url"] == f"http://{HOST}/p/{poll.slug}/manage/{token}/"
    assert poll.owner_token_matches(token)
    assert client.get(body["manage_url"]).status_code == 200


def test_creating_a_poll_takes_every_optional_field(client):
    closes_at = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    body = {
        "question": "Pick two",
        "choices": ["A", "B", "C"],
        "description": "For the panel",
        "max_choices": 2,
        "closes_at": closes_at.isoformat(),
        "results_visibility": "after_vote",
        "dedupe": "none",
    }
    created = post_json(client, "/api/polls/", body).json()
    poll = Poll.objects.get(slug=created["id"])
    assert (poll.max_choices, poll.closes_at, poll.results_visibility, poll.dedupe) == (
        2,
        closes_at,
        "after_vote",
        "none",
    )
    assert poll.description == "For the panel"


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"choices": ["A", "B"]}, "question", "required"),
        ({"question": "Q", "choices": ["A"]}, "choices", "at least 2"),
        ({"question": "Q", "choices": ["A", "a"]}, "choices", "different"),
        ({"question": "Q", "choices": [f"c{i}" for i in range(21)]}, "choices", "no more than 20"),
        ({"question": "Q" * 201, "choices": ["A", "B"]}, "question", "200 characters"),
        ({"question": 42, "choices": ["A", "B"]}, "question", "text"),
        ({"question": "Q", "choices": "A,B"}, "choices", "list"),
        ({"question": "Q", "choices": ["A", 7]}, "choices", "text"),
        ({"question": "Q\u0000", "choices": ["A", "B"]}, "question", "null characters"),
        ({"question": "Q", "choices": ["A", "B"], "max_choices": 3}, "max_choices", "between 1 and 2"),
        ({"question": "Q", "choices": ["A", "B"], "max_choices": True}, "max_choices", "whole number"),
        ({"question": "Q", "choices": ["A", "B"], "closes_at": "2001-01-01T00:00:00Z"}, "closes_at", "future"),
        ({"question": "Q", "choices": ["A", "B"], "closes_at": "tomorrow"}, "closes_at", "format"),
        ({"question": "Q", "choices": ["A", "B"], "dedupe": "cookie"}, "dedupe", "not a valid choice"),
    ],
)
def test_creating_a_poll_with_bad_fields_is_400_naming_the_field(client, body, field, says):
    response = post_json(client, "/api/polls/", body)
    body = assert_error(response, 400, detail_contains=says, field=field)
    assert says.lower() in " ".join(body[field]).lower()
    assert Poll.objects.count() == 0


def test_a_body_that_is_not_a_json_object_is_400(client):
    assert_error(post_json(client, "/api/polls/", "[1, 2]"), 400)
    assert_error(post_json(client, "/api/polls/", "null"), 400)


def test_malformed_json_is_400_saying_so(client):
    assert_error(post_json(client, "/api/polls/", '{"question": '), 400, detail_contains="not valid JSON")


def test_a_body_that_is_not_json_is_415(client):
    response = client.post("/api/polls/", {"question": "Q", "choices": ["A", "B"]})  # a form post
    assert_error(response, 415, detail_contains="Content-Type: application/json")
    response = client.post("/api/votes/", "poll=x", content_type="text/plain")
    assert_error(response, 415)


def test_a_body_over_256_kib_is_413_not_a_crash(client):
    huge = json.dumps({"question": "Q", "choices": ["A", "B"], "description": "x" * 300_000})
    assert_error(post_json(client, "/api/polls/", huge), 413, detail_contains="256 KiB")
    assert_error(post_json(client, "/api/votes/", huge), 413)


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"poll": ' + "9" * 5000 + "}",
        '\ufeff{"poll": "x"}',
        '{"poll": "x", "choices": [1e999]}',
    ],
    ids=["nested too deeply", "huge number", "byte order mark", "infinite number"],
)
def test_pathological_json_is_400_not_a_crash(client, body):
    assert_error(post_json(client, "/api/votes/", body), 400)
    assert_error(post_json(client, "/api/polls/", body), 400)


def test_invalid_utf8_and_lone_surrogates_are_400(client):
    assert_error(post_json(client, "/api/polls/", b'{"question": "\xff\xfe", "choices": ["A", "B"]}'), 400)
    response = post_json(client, "/api/polls/", '{"question": "\\ud800", "choices": ["A", "B"]}')
    assert_error(response, 400, field="question")


def test_unsupported_methods_are_405_with_allow(client):
    response = client.delete("/api/polls/")
    assert_error(response, 405)
    assert response["Allow"] == "POST"
    response = client.options(f"/api/polls/{make_poll().slug}/")
    assert_error(response, 405)
    assert "OPTIONS" not in response["Allow"]


# --- GET /api/polls/<id>/ ---------------------------------------------------------------


def test_reading_a_poll_gives_it_without_the_owner_link(client):
    poll = make_poll(max_choices=2)
    response = client.get(f"/api/polls/{poll.slug}/")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == poll.slug and body["max_choices"] == 2
    assert body["choices"] == [{"id": c.id, "text": c.text} for c in poll.choices.all()]
    assert "manage_url" not in body and poll.owner_token_hash not in response.content.decode()


def test_closed_is_the_effective_state(client):
    past_deadline = make_poll(closes_at=timezone.now() + timedelta(seconds=1))
    Poll.objects.filter(pk=past_deadline.pk).update(closes_at=timezone.now() - timedelta(seconds=1))
    not_open_yet = make_poll(opens_at=timezone.now() + timedelta(hours=1))
    for poll in (past_deadline, not_open_yet):
        assert client.get(f"/api/polls/{poll.slug}/").json()["closed"] is True


@pytest.mark.parametrize("slug", ["nosuchpoll", "a" * 300, "%00", "..", "ABC", "%F0%9F%98%80"])
def test_an_unknown_or_malformed_poll_id_is_404(client, slug):
    assert_error(client.get(f"/api/polls/{slug}/"), 404, detail_contains="no poll")
    assert_error(client.get(f"/api/polls/{slug}/results/"), 404)


# --- POST /api/votes/ -------------------------------------------------------------------


def test_a_vote_is_201_and_counted(client):
    poll = make_poll()
    pick = choice_ids(poll)[1]
    response = vote(client, poll, [pick], voter="alice")
    assert response.status_code == 201
    assert response.json() == {"poll": poll.slug, "choices": [pick], "words": [], "voter": "alice"}
    assert Ballot.objects.get(poll=poll).voter_key == "alice"
    results = client.get(f"/api/polls/{poll.slug}/results/").json()
    assert [c["votes"] for c in results["choices"]] == [0, 1, 0]


def test_a_second_vote_of_the_same_voter_is_409_and_not_counted(client):
    poll = make_poll()
    assert vote(client, poll, voter="alice").status_code == 201
    assert_error(vote(client, poll, choice_ids(poll)[1:2], voter="alice"), 409, detail_contains="already voted")
    assert poll.ballots.count() == 1
    assert client.get(f"/api/polls/{poll.slug}/results/").json()["total"] == 1


def test_a_vote_on_a_closed_poll_is_403(client):
    poll = make_poll()
    services.poll_close(poll=poll)
    assert_error(vote(client, poll), 403, detail_contains="closed")
    not_open_yet = make_poll(opens_at=timezone.now() + timedelta(hours=1))
    assert_error(vote(client, not_open_yet), 403, detail_contains="not open yet")
    assert Ballot.objects.count() == 0


@pytest.mark.parametrize("poll_id", ["nosuchpoll", "", "x" * 64, "\u00e9t\u00e9"])
def test_a_vote_on_an_unknown_poll_is_404(client, poll_id):
    response = post_json(client, "/api/votes/", {"poll": poll_id, "choices": [1], "voter": "v"})
    if poll_id == "":
        assert_error(response, 400, field="poll")  # blank is a missing field, not an id
    else:
        assert_error(response, 404, detail_contains="no poll")


@pytest.mark.parametrize(
    ("picks", "says"),
    [
        (lambda ids: [], "at least one"),
        (lambda ids: ids[:2], "only one"),
        (lambda ids: [ids[0], ids[0]], "only once"),
        (lambda ids: [max(ids) + 1000], "not part of this poll"),
        (lambda ids: ["1"], "whole number"),
        (lambda ids: [1.5], "whole number"),
        (lambda ids: [True], "whole number"),
        (lambda ids: ids[0], "list"),
    ],
)
def test_an_invalid_pick_is_400_saying_why(client, picks, says):
    poll = make_poll()
    response = vote(client, poll, picks(choice_ids(poll)))
    body = assert_error(response, 400, detail_contains=says, field="choices")
    assert body["choices"]
    assert poll.ballots.count() == 0


def test_a_choice_of_another_poll_is_400(client):
    poll, other = make_poll(), make_poll()
    assert_error(vote(client, poll, choice_ids(other)[:1]), 400, detail_contains="not part of this poll")


def test_a_multiple_choice_poll_takes_up_to_max_choices(client):
    poll = make_poll(max_choices=2)
    assert_error(vote(client, poll, choice_ids(poll), voter="a"), 400, detail_contains="at most 2")
    assert vote(client, poll, choice_ids(poll)[:2], voter="a").status_code == 201


@pytest.mark.parametrize(
    ("voter", "says"),
    [
        ("", "blank"),
        ("v" * 65, "64 characters"),
        (12, "text"),
        ("a\u0000b", "null characters"),
        ("   ", "only spaces"),
        ("\u3000\t", "only spaces"),  # an ideographic space and a tab: nothing left once trimmed
    ],
)
def test_a_bad_voter_key_is_400(client, voter, says):
    assert_error(vote(client, make_poll(), voter=voter), 400, detail_contains=says, field="voter")


def test_spellings_of_one_voter_key_are_one_voter(client):
    poll = make_poll()
    assert vote(client, poll, voter="José").json()["voter"] == "josé"
    # Another case, spaces around, fullwidth letters, the decomposed spelling (e + combining acute).
    for spelling in ("JOSÉ", " josé ", "ｊｏｓé", "Jose\u0301"):
        assert_error(vote(client, poll, voter=spelling), 409, detail_contains="already voted")
    assert list(poll.ballots.values_list("voter_key", flat=True)) == ["josé"]
    assert vote(client, poll, voter="josie").status_code == 201  # a different key is another voter


def test_results_find_the_voter_by_any_spelling_of_the_key(client):
    poll = make_poll(results_visibility="after_vote")
    assert vote(client, poll, voter="Alice").status_code == 201
    assert client.get(f"/api/polls/{poll.slug}/results/", {"voter": " ALICE "}).status_code == 200


def test_without_voter_or_cookie_the_vote_is_400_voter_required(client):
    poll = make_poll()
    assert_error(vote(client, poll, voter=None), 400, detail_contains="voter required", field="voter")
    assert poll.ballots.count() == 0


def test_without_voter_the_browser_voter_cookie_identifies_the_voter(client):
    first, second = make_poll(), make_poll()
    # A vote on the site sets the signed voter cookie.
    assert client.post(f"/p/{first.slug}/vote/", {"choice": choice_ids(first)[0]}).status_code == 302
    response = vote(client, second, voter=None)
    assert response.status_code == 201 and response.json()["voter"] is None
    assert_error(vote(client, second, voter=None), 409)
    assert_error(vote(client, first, voter=None), 409)  # the same person as on the site
    web_key = first.ballots.get().voter_key
    assert second.ballots.get().voter_key == web_key


def test_a_forged_voter_cookie_counts_as_no_cookie(client):
    client.cookies["ct_voter"] = "someone-else"
    assert_error(vote(client, make_poll(), voter=None), 400, detail_contains="voter required")


def test_a_poll_without_duplicate_protection_counts_every_call(client):
    poll = make_poll(dedupe="none")
    assert vote(client, poll, voter=None).status_code == 201
    assert vote(client, poll, voter="same").status_code == 201
    assert vote(client, poll, voter="same").status_code == 201
    assert poll.ballots.count() == 3


def test_a_poll_deduped_by_address_refuses_a_second_voter_from_the_same_address(client):
    poll = make_poll(dedupe="ip")

    def vote_from(address, voter):
        body = json.dumps({"poll": poll.slug, "choices": choice_ids(poll)[:1], "voter": voter})
        return client.post("/api/votes/", body, content_type="application/json", REMOTE_ADDR=address)

    assert vote_from("203.0.113.7", "alice").status_code == 201
    assert_error(vote_from("203.0.113.7", "bob"), 409)
    assert vote_from("203.0.113.8", "bob").status_code == 201
    assert poll.ballots.count() == 2


# --- Cross-site policy ------------------------------------------------------------------


def test_a_vote_from_a_page_on_another_site_is_403_and_programs_are_not_affected(client):
    poll = make_poll()
    assert_error(vote(client, poll, voter="a", Origin="http://evil.example"), 403, detail_contains="another site")
    assert_error(vote(client, poll, voter="b", Origin="null"), 403)
    assert_error(vote(client, poll, voter="c", Origin="http://127.0.0.1:9999"), 403)  # another port
    assert_error(vote(client, poll, voter="d", **{"Sec-Fetch-Site": "cross-site"}), 403)
    assert poll.ballots.count() == 0
    assert vote(client, poll, voter="program").status_code == 201
    assert (
        vote(client, poll, voter="own-page", Origin=OWN_ORIGIN, **{"Sec-Fetch-Site": "same-origin"}).status_code == 201
    )
    assert poll.ballots.count() == 2


def test_a_trusted_origin_may_vote(client, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://stage.example"]
    assert vote(client, make_poll(), Origin="https://stage.example").status_code == 201


def test_creating_a_poll_from_another_site_is_403(client):
    body = {"question": "Q", "choices": ["A", "B"]}
    assert_error(post_json(client, "/api/polls/", body, Origin="http://evil.example"), 403)
    assert Poll.objects.count() == 0


# --- Rate limits ------------------------------------------------------------------------


def test_a_voter_over_the_limit_gets_429_with_retry_after(client, settings):
    settings.RATELIMIT_VOTES_PER_VOTER = 3
    polls = [make_poll() for _ in range(4)]
    assert [vote(client, poll, voter="eager").status_code for poll in polls[:3]] == [201, 201, 201]
    response = vote(client, polls[3], voter="eager")
    assert_error(response, 429, detail_contains="too many votes from you")
    assert 1 <= int(response["Retry-After"]) <= settings.RATELIMIT_WINDOW * (1 + 1 / SLICES)
    assert polls[3].ballots.count() == 0
    assert vote(client, polls[3], voter="patient").status_code == 201


def test_an_address_over_its_limit_gets_429(client, settings):
    settings.RATELIMIT_VOTES_PER_ADDRESS = 2
    poll = make_poll(dedupe="none")
    assert [vote(client, poll, voter=f"v{i}").status_code for i in range(2)] == [201, 201]
    assert_error(vote(client, poll, voter="v3"), 429, detail_contains="network")


def test_poll_creation_is_limited_per_address(client, settings):
    settings.RATELIMIT_POLLS_PER_ADDRESS = 1
    body = {"question": "Q", "choices": ["A", "B"]}
    assert post_json(client, "/api/polls/", body).status_code == 201
    response = post_json(client, "/api/polls/", body)
    assert_error(response, 429)
    assert int(response["Retry-After"]) >= 1


def test_an_address_past_its_polls_for_the_day_gets_429_saying_so(client, settings):
    settings.RATELIMIT_POLLS_PER_ADDRESS_PER_DAY = 2
    body = {"question": "Q", "choices": ["A", "B"]}
    assert [post_json(client, "/api/polls/", body).status_code for _ in range(2)] == [201, 201]
    response = post_json(client, "/api/polls/", body)
    assert_error(response, 429, detail_contains="has made 2 polls in the last 24 hours")
    assert response.json()["detail"].endswith(" hours.")
    assert 24 * 3600 <= int(response["Retry-After"]) <= 26 * 3600  # when the first one is a day old
    assert Poll.objects.count() == 2


def test_ratelimit_enable_0_turns_limits_off(client, settings):
    settings.RATELIMIT_VOTES_PER_VOTER = 1
    settings.RATELIMIT_ENABLE = False
    assert [vote(client, make_poll(), voter="v").status_code for _ in range(3)] == [201, 201, 201]


# --- GET /api/polls/<id>/results/ -------------------------------------------------------


def test_results_count_ballots_and_selections(client, django_capture_on_commit_callbacks):
    poll = make_poll(max_choices=2)
    tea, coffee, water = choice_ids(poll)
    # Tallies follow the commit; this test's transaction never commits, so run those hooks.
    with django_capture_on_commit_callbacks(execute=True):
        vote(client, poll, [tea, coffee], voter="a")
        vote(client, poll, [tea], voter="b")
    response = client.get(f"/api/polls/{poll.slug}/results/")
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "poll": poll.slug,
        "question": "Tea or coffee?",
        "total": 2,
        "closed": False,
        "version": body["version"],
        "kind": "choice",
        "choices": [
            {"id": tea, "text": "Tea", "votes": 2},
            {"id": coffee, "text": "Coffee", "votes": 1},
            {"id": water, "text": "Water", "votes": 0},
        ],
    }
    assert body["version"] >= 2
    with django_capture_on_commit_callbacks(execute=True):
        vote(client, poll, [water], voter="c")
    assert client.get(f"/api/polls/{poll.slug}/results/").json()["version"] > body["version"]


def test_results_after_vote_are_403_until_the_voter_has_voted(client):
    poll = make_poll(results_visibility="after_vote")
    url = f"/api/polls/{poll.slug}/results/"
    assert_error(client.get(url), 403, detail_contains="once you have voted")
    assert_error(client.get(url, {"voter": "alice"}), 403)
    vote(client, poll, voter="alice")
    assert client.get(url, {"voter": "alice"}).json()["total"] == 1
    assert_error(client.get(url, {"voter": "bob"}), 403)


def test_results_after_close_are_403_until_the_poll_closes(client):
    poll = make_poll(results_visibility="after_close")
    vote(client, poll, voter="alice")
    url = f"/api/polls/{poll.slug}/results/"
    assert_error(client.get(url, {"voter": "alice"}), 403, detail_contains="when the poll closes")
    services.poll_close(poll=poll)
    body = client.get(url).json()
    assert (body["total"], body["closed"]) == (1, True)


def test_a_bad_voter_in_the_results_query_is_400(client):
    poll = make_poll(results_visibility="after_vote")
    assert_error(client.get(f"/api/polls/{poll.slug}/results/", {"voter": "x" * 65}), 400, field="voter")
    assert_error(client.get(f"/api/polls/{poll.slug}/results/?voter=a%00b"), 400, field="voter")


# --- Schema and docs --------------------------------------------------------------------


def test_the_schema_documents_every_status_code_with_its_error_body(client):
    schema = client.get("/api/schema/?format=json").json()
    expected = {
        ("/api/polls/", "post"): {"201", "400", "403", "413", "415", "429"},
        ("/api/polls/{id}/", "get"): {"200", "404"},
        ("/api/votes/", "post"): {"201", "400", "403", "404", "409", "413", "415", "429"},
        ("/api/polls/{id}/results/", "get"): {"200", "400", "403", "404"},
        ("/api/events/", "post"): {"201", "400", "403", "413", "415", "429"},
        ("/api/events/{id}/", "get"): {"200", "404"},
        ("/api/events/{id}/control/", "post"): {"200", "400", "403", "404", "413", "415"},
    }
    assert {(path, method) for path, methods in schema["paths"].items() for method in methods} == set(expected)
    for (path, method), codes in expected.items():
        responses = schema["paths"][path][method]["responses"]
        assert set(responses) == codes
        for code in codes - {"200", "201"}:
            body = responses[code]["content"]["application/json"]["schema"]
            assert "detail" in json.dumps(body) or body.get("$ref", "").endswith("/Error"), (path, code)


def request_examples(schema: dict, path: str) -> list[dict]:
    examples = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"].get("examples", {})
    return [example["value"] for example in examples.values()]


@pytest.mark.django_db
def test_every_request_example_in_the_schema_is_accepted_as_swagger_sends_it(client):
    schema = client.get("/api/schema/?format=json").json()
    with_body = {path for path, methods in schema["paths"].items() if "requestBody" in methods.get("post", {})}
    assert with_body == {"/api/polls/", "/api/votes/", "/api/events/", "/api/events/{id}/control/"}
    # Swagger falls back to a guess of its own (two equal choices: a 400) where the schema gives none.
    assert sorted(path for path in with_body if not request_examples(schema, path)) == []

    polls = {}
    for example in request_examples(schema, "/api/polls/"):
        response = post_json(client, "/api/polls/", example)
        assert response.status_code == 201, (example, response.json())
        polls.setdefault(response.json()["kind"], response.json())

    # A vote names a poll: as written, the only complaint is that no such poll exists; with the id of a poll
    # of the right kind (and one of its choice ids) put in, it counts.
    for example in request_examples(schema, "/api/votes/"):
        response = post_json(client, "/api/votes/", example)
        assert response.status_code == 404 and "poll" in response.json()["detail"].lower(), response.json()
        poll = polls["scale" if "value" in example else "words" if "words" in example else "choice"]
        mine = example | {"poll": poll["id"]}
        if "choices" in example:
            mine["choices"] = [choice["id"] for choice in poll["choices"][: len(example["choices"])]]
        response = post_json(client, "/api/votes/", mine)
        assert response.status_code == 201, (mine, response.json())

    (example,) = request_examples(schema, "/api/events/")
    response = post_json(client, "/api/events/", example)
    assert response.status_code == 201, response.json()
    event = response.json()
    token = event["manage_url"].rstrip("/").rsplit("/", 1)[1]
    for example in request_examples(schema, "/api/events/{id}/control/"):
        response = post_json(client, f"/api/events/{event['id']}/control/", example, Authorization=f"Bearer {token}")
        assert response.status_code == 200, (example, response.json())


def test_the_docs_page_loads_its_assets_from_this_site(client):
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "<script>" not in html and "<style>" not in html and "//cdn" not in html
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and "/api/schema/" in script.content.decode()
