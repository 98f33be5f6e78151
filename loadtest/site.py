"""The site as a client sees it: seeding polls, creating and running an event, reading results, over plain HTTP."""

import http.client
import json
import re
import secrets
import urllib.parse
from dataclasses import dataclass

CHOICE_INPUT = re.compile(r'name="choice" value="(\d+)"')
WORD_INPUT = re.compile(r'name="words"')
MANAGE_LOCATION = re.compile(r"/p/([^/]+)/manage/")


class SiteError(Exception):
    pass


@dataclass(frozen=True)
class Answer:
    status: int
    headers: http.client.HTTPMessage
    text: str

    def json(self):
        return json.loads(self.text)


@dataclass(frozen=True)
class Results:
    total: int
    votes: dict[int, int]  # choice id -> votes
    words: list[tuple[str, int]] | None = None  # a word cloud's terms as shown, most frequent first


def kind_fields(question: dict) -> list[tuple[str, str]]:
    """A question's kind as the create form posts it (the choices' rows aside)."""
    kind = question.get("kind", "choice")
    fields = [("kind", kind)]
    if kind == "scale":
        fields += [("scale_min", str(question["scale_min"])), ("scale_max", str(question["scale_max"]))]
    if kind == "words":
        fields += [("max_words", str(question["max_words"]))]
    if question.get("max_choices", 1) > 1:
        fields += [("allow_multiple", "on"), ("max_choices", str(question["max_choices"]))]
    return fields


def poll_entry(data: dict) -> dict:
    """A poll as the API answers it, as the load test keeps it (polls.json, event.json, loadtest/pollbook.py)."""
    return {
        "slug": data["id"],
        "choice_ids": [choice["id"] for choice in data["choices"]],
        "max_choices": data["max_choices"],
        "kind": data.get("kind", "choice"),
        "max_words": data.get("max_words"),
        "scale_min": data.get("scale_min"),
    }


def form_post(fields: list[tuple[str, str]], *, origin: str) -> tuple[str, dict[str, str]]:
    """The body and headers of a form a browser posts from `origin`: a CSRF cookie and hidden field
    that agree (all Django's CSRF check needs, so no page is fetched for a token) and the Origin."""
    csrf = secrets.token_hex(16)
    body = urllib.parse.urlencode([("csrfmiddlewaretoken", csrf), *fields])
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={csrf}", "Origin": origin}
    return body, headers


class Site:
    def __init__(self, base_url: str) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self.base_url = base_url.rstrip("/")
        self.host, self.port = parts.hostname, parts.port or 80

    def request(self, method: str, path: str, body: str | None = None, headers: dict | None = None) -> Answer:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return Answer(response.status, response.headers, response.read().decode())
        finally:
            connection.close()

    def post_form(self, path: str, fields: list[tuple[str, str]]) -> Answer:
        """Posts a form as a browser on this site would (`form_post`); redirects are not followed."""
        return self.request("POST", path, *form_post(fields, origin=self.base_url))

    def create_poll(self, *, question: str, choices: list[str] = (), max_choices: int = 1, **kind) -> dict:
        """Creates a poll through the landing page's form, as a person would; returns its slug and choices.
        `kind`: a rating's (`kind="scale"`, `scale_min`, `scale_max`), or a word cloud's (`kind="words"`,
        `max_words`)."""
        fields = [("question", question)] + [("choices", text) for text in choices]
        fields += [("results_visibility", "always"), ("dedupe", "browser")]
        fields += kind_fields({"max_choices": max_choices, **kind})
        answer = self.post_form("/polls/new/", fields)
        slug = MANAGE_LOCATION.search(answer.headers.get("Location", "")) if answer.status == 302 else None
        if not slug:
            raise SiteError(f"creating a poll answered {answer.status}: {answer.text[:300]}")
        page = self.request("GET", f"/p/{slug.group(1)}/")
        choice_ids = [int(value) for value in CHOICE_INPUT.findall(page.text)]
        expected = len(choices)
        if kind.get("kind") == "scale":
            expected = kind["scale_max"] - kind["scale_min"] + 1
        if len(choice_ids) != expected or (kind.get("kind") == "words") != bool(WORD_INPUT.search(page.text)):
            raise SiteError(f"the new poll's page shows {len(choice_ids)} choices, not {expected}")
        # The owner's page (its path holds the owner token): the chaos harness voids a burst there.
        manage_path = urllib.parse.urlsplit(answer.headers["Location"]).path
        return {
            "slug": slug.group(1),
            "choice_ids": choice_ids,
            "max_choices": max_choices,
            "kind": kind.get("kind", "choice"),
            "max_words": kind.get("max_words"),
            "scale_min": kind.get("scale_min"),
            "manage_path": manage_path,
        }

    def create_poll_on_the_api(self, **question) -> dict:
        """Creates a poll through `POST /api/polls/`, as a program would: one request, so hundreds are quick."""
        answer = self.post_json("/api/polls/", question)
        if answer.status != 201:
            raise SiteError(f"POST /api/polls/ answered {answer.status}: {answer.text[:300]}")
        return poll_entry(answer.json())

    def post_json(self, path: str, body: dict, headers: dict | None = None) -> Answer:
        return self.request("POST", path, json.dumps(body), {"Content-Type": "application/json", **(headers or {})})

    def create_event(self, *, title: str, questions: list[dict]) -> dict:
        """Creates an event through `POST /api/events/`, as a program would; returns its id, join code, owner
        token (the last part of `manage_url`) and questions (slug, choice ids, max choices), in order."""
        answer = self.post_json("/api/events/", {"title": title, "questions": questions})
        if answer.status != 201:
            raise SiteError(f"POST /api/events/ answered {answer.status}: {answer.text[:300]}")
        data = answer.json()
        return {
            "id": data["id"],
            "code": data["code"],
            "token": data["manage_url"].rstrip("/").rsplit("/", 1)[1],
            "questions": [poll_entry(question) for question in data["questions"]],
        }

    def control_event(self, event: dict, action: str, **fields) -> dict:
        """One of the presenter's actions (`next`, `open`, `reveal`, ...) with the owner token; returns the state."""
        answer = self.post_json(
            f"/api/events/{event['id']}/control/",
            {"action": action, **fields},
            {"Authorization": f"Bearer {event['token']}"},
        )
        if answer.status != 200:
            raise SiteError(f"the event's {action!r} answered {answer.status}: {answer.text[:300]}")
        return answer.json()["state"]

    def results(self, slug: str) -> Results:
        """The results the site shows: the JSON API's."""
        answer = self.request("GET", f"/api/polls/{slug}/results/")
        if answer.status != 200:
            raise SiteError(f"GET /api/polls/{slug}/results/ answered {answer.status}: {answer.text[:200]}")
        data = answer.json()
        words = [(term["text"], term["count"]) for term in data["words"]] if data.get("kind") == "words" else None
        votes = {choice["id"]: choice["votes"] for choice in data["choices"]}
        return Results(total=data["total"], votes=votes, words=words)


def seed_polls(site: Site, count: int, *, via: str = "form") -> list[dict]:
    """The polls that exist before the load (`seed_question`), created through the landing page's form,
    or through the API (`via="api"`)."""
    create = site.create_poll_on_the_api if via == "api" else site.create_poll
    return [create(**seed_question(number)) for number in range(1, count + 1)]


def seed_event(site: Site, count: int) -> dict:
    """An event of `count` questions like the seeded polls, as `Site.create_event` answers it."""
    questions = [seed_question(number) for number in range(1, count + 1)]
    return site.create_event(title="Load test event", questions=questions)


# The seeded ratings' range.
SCALE = {"scale_min": 1, "scale_max": 5}


def seed_question(number: int) -> dict:
    """Of every four questions: a word cloud of up to 3 words, a rating 1–5, one single choice, one "pick
    up to 2" (the question kinds' share of the load; a short hall run shows the first two kinds first)."""
    match number % 4:
        case 1:
            return {"question": f"Load test poll {number}: in a word or two?", "kind": "words", "max_words": 3}
        case 2:
            return {"question": f"Load test poll {number}: how useful, 1 to 5?", "kind": "scale", **SCALE}
    return {
        "question": f"Load test poll {number}: which one?",
        "choices": ["Red", "Green", "Blue", "Yellow"],
        "max_choices": 2 if number % 4 == 0 else 1,
    }
