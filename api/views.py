"""The JSON API of DESIGN.md: one thin view per operation, calling the same services and
selectors as the HTML views. Errors are mapped to status codes in `api.errors`."""

from django.urls import reverse
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api import serializers
from api.errors import VALIDATION_ERROR_SCHEMA, ErrorSerializer, api_exception_handler
from api.parsers import BoundedJSONParser
from api.permissions import CROSS_SITE, SameSiteOnly
from polls import events, selectors, services, voters
from polls.models import Event, Poll


def _error(description: str, schema=ErrorSerializer) -> OpenApiResponse:
    return OpenApiResponse(response=schema, description=description)


INVALID = _error(
    "The request is not valid: `detail` says why, each bad field lists its messages.", VALIDATION_ERROR_SCHEMA
)
NOT_FOUND = _error("No poll has this id.")
TOO_LARGE = _error("The body is larger than 256 KiB.")
NOT_JSON = _error("The body is not JSON (send Content-Type: application/json).")
RATE_LIMITED = _error("Too many requests: the Retry-After header says how many seconds to wait.")
# What a create call may answer besides 201 and 400: the same for polls and events.
CREATE_REFUSALS = {403: _error(f"Refused: {CROSS_SITE}."), 413: TOO_LARGE, 415: NOT_JSON, 429: RATE_LIMITED}
POLL_ID = OpenApiParameter("id", str, OpenApiParameter.PATH, description="The poll's id (its slug).")


class _CreatedPollLinks(AutoSchema):
    """Adds OpenAPI links from a created poll to the calls that use it, so clients and stateful
    fuzzers (schemathesis) know the answer's `id` and choice ids feed the next calls, and send
    words to the word clouds they create."""

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        by_id = {"id": "$response.body#/id"}
        operation["responses"]["201"]["links"] = {
            "ReadPoll": {"operationId": "poll_get", "parameters": by_id},
            "ReadResults": {"operationId": "poll_results", "parameters": by_id},
            "Vote": {
                "operationId": "vote_cast",
                "requestBody": {"poll": "$response.body#/id", "choices": ["$response.body#/choices/0/id"]},
                "description": "Votes for the first choice (add a `voter`).",
            },
            "VoteWords": {
                "operationId": "vote_cast",
                "requestBody": {"poll": "$response.body#/id", "words": ["cloud"]},
                "description": "Sends a word to a word cloud (kind `words`; add a `voter`).",
            },
        }
        return operation


class ApiView(APIView):
    parser_classes = [BoundedJSONParser]
    # OPTIONS and other methods a call does not have answer 405 with an Allow header: the
    # OpenAPI schema is how programs discover the API.
    http_method_names = ["get", "post", "head"]

    def get_exception_handler(self):
        return api_exception_handler


def _poll_or_404(slug: str) -> Poll:
    return selectors.poll_get(slug=slug)  # Poll.DoesNotExist is a 404 (api.errors)


def _validated(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# Request examples Swagger's "Try it out" sends as they are: each is accepted by the API (tested).
# A vote needs a real poll: the vote examples name a poll and choices to replace with yours. The
# fuzzer's run makes a word cloud of that id (api/tests/test_fuzz.py) and varies the first example
# most, so words come first: its variations then reach the word cloud's own rules.
EXAMPLE_POLL_ID = "k3txudtwrv"
POLL_EXAMPLES = [
    OpenApiExample(
        "A poll of choices",
        value={"question": "Which talk opens the day?", "choices": ["Databases", "Browsers", "Compilers"]},
        request_only=True,
    ),
    OpenApiExample(
        "Pick up to two, vote until a deadline",
        value={
            "question": "Which two snacks for the break?",
            "choices": ["Fruit", "Biscuits", "Cheese", "Nuts"],
            "max_choices": 2,
            "closes_at": "2099-06-01T16:00:00Z",
            "results_visibility": "after_vote",
        },
        request_only=True,
    ),
    OpenApiExample(
        "A rating scale",
        value={
            "question": "How clear was the talk?",
            "kind": "scale",
            "scale_min": 1,
            "scale_max": 5,
            "scale_labels": ["Lost me", "Crystal clear"],
        },
        request_only=True,
    ),
    OpenApiExample(
        "A word cloud",
        value={"question": "One word for this morning?", "kind": "words", "max_words": 2, "profanity_filter": True},
        request_only=True,
    ),
]
VOTE_EXAMPLES = [
    OpenApiExample(
        "Words",
        summary="Words for a word cloud (put your poll's id)",
        value={"poll": EXAMPLE_POLL_ID, "words": ["Coffee", "sunshine"], "voter": "alice@example.com"},
        request_only=True,
    ),
    OpenApiExample(
        "A vote for one choice",
        summary="A vote for one choice (put your poll's id and a choice id from it)",
        value={"poll": EXAMPLE_POLL_ID, "choices": [1], "voter": "alice@example.com"},
        request_only=True,
    ),
    OpenApiExample(
        "A rating",
        summary="A rating on a scale poll (put your poll's id)",
        value={"poll": EXAMPLE_POLL_ID, "value": 4, "voter": "alice@example.com"},
        request_only=True,
    ),
]
EVENT_EXAMPLES = [
    OpenApiExample(
        "A two-question event",
        value={
            "title": "Monday all-hands",
            "questions": [
                {"question": "How was your weekend?", "kind": "scale", "scale_min": 1, "scale_max": 5},
                {"question": "Where do we eat on Friday?", "choices": ["Noodles", "Tacos", "Salad"]},
            ],
        },
        request_only=True,
    ),
]
# In the order a presenter sends them to a new event, each one valid after the one before.
EVENT_CONTROL_EXAMPLES = [
    OpenApiExample("Put the first question on screen", value={"action": "next"}, request_only=True),
    OpenApiExample("Open it for 30 seconds", value={"action": "open", "seconds": 30}, request_only=True),
    OpenApiExample("Close it", value={"action": "close"}, request_only=True),
    OpenApiExample("Show the results", value={"action": "reveal"}, request_only=True),
]


class PollCreateView(ApiView):
    permission_classes = [SameSiteOnly]

    schema = _CreatedPollLinks()

    @extend_schema(
        operation_id="poll_create",
        summary="Create a poll",
        request=serializers.PollCreateInput,
        examples=POLL_EXAMPLES,
        responses={
            201: serializers.PollCreatedOutput,
            400: INVALID,
            **CREATE_REFUSALS,
        },
    )
    def post(self, request: Request) -> Response:
        fields = _validated(serializers.PollCreateInput, request.data)
        given = {name: value for name, value in fields.items() if value is not None}
        poll, owner_token = services.poll_create(**given, ip_address=voters.client_address(request.META))
        manage_url = request.build_absolute_uri(reverse("web:manage", args=[poll.slug, owner_token]))
        body = serializers.PollCreatedOutput(poll, context={"request": request, "manage_url": manage_url}).data
        return Response(body, status=status.HTTP_201_CREATED)


class PollDetailView(ApiView):
    @extend_schema(
        operation_id="poll_get",
        summary="Read a poll",
        parameters=[POLL_ID],
        responses={200: serializers.PollOutput, 404: NOT_FOUND},
    )
    def get(self, request: Request, id: str) -> Response:
        return Response(serializers.PollOutput(_poll_or_404(id), context={"request": request}).data)


class VoteCastView(ApiView):
    permission_classes = [SameSiteOnly]

    @extend_schema(
        operation_id="vote_cast",
        summary="Cast a vote",
        description=(
            "The voter is `voter` when given, else the browser's voter cookie; without either the vote is "
            'refused with 400 "voter required", unless the poll counts every call (`dedupe` = `none`).'
        ),
        request=serializers.VoteInput,
        examples=VOTE_EXAMPLES,
        responses={
            201: serializers.VoteOutput,
            400: INVALID,
            403: _error(f"The poll is closed or not open yet; or refused: {CROSS_SITE}."),
            404: NOT_FOUND,
            409: _error("This voter has already voted in this poll; the first vote counts."),
            413: TOO_LARGE,
            415: NOT_JSON,
            429: RATE_LIMITED,
        },
    )
    def post(self, request: Request) -> Response:
        fields = _validated(serializers.VoteInput, request.data)
        voter_key = fields.get("voter") or voters.voter_key_from_cookies(request.COOKIES)
        ip_address = voters.client_address(request.META)
        poll = _poll_or_404(fields["poll"])
        words = fields.get("words")
        choice_ids = services.ballot_choice_ids(
            poll=poll, choices=fields.get("choices"), value=fields.get("value"), words=words
        )
        ballot = services.vote_cast(
            poll=poll, choice_ids=choice_ids, voter_key=voter_key, ip_address=ip_address, words=words
        )
        # Already JSON-ready: VoteOutput documents it; running it would cost a deep copy of its fields per vote.
        body = {
            "poll": ballot.poll.slug,
            "choices": ballot.choice_ids,
            "words": ballot.terms,
            "voter": fields.get("voter"),
        }
        return Response(body, status=status.HTTP_201_CREATED)


class PollResultsView(ApiView):
    @extend_schema(
        operation_id="poll_results",
        summary="Read a poll's results",
        description=(
            "Results follow the poll's `results_visibility`: with `after_vote` pass `voter` (or send the voter "
            "cookie) to show you voted; with `after_close` they appear when the poll closes."
        ),
        parameters=[POLL_ID, OpenApiParameter("voter", str, description="Your voter key, for `after_vote` polls.")],
        responses={
            200: serializers.ResultsOutput,
            400: INVALID,
            403: _error("The poll's results are hidden from you for now; `detail` says until when."),
            404: NOT_FOUND,
        },
    )
    def get(self, request: Request, id: str) -> Response:
        poll, cached_tally = selectors.poll_get_with_tally(slug=id)  # Poll.DoesNotExist is a 404
        voter_key = None
        if selectors.voting_reveals_results(poll=poll):  # only then does it matter who is asking
            query = _validated(serializers.ResultsQuery, request.query_params)
            voter_key = query.get("voter") or voters.voter_key_from_cookies(request.COOKIES)
        seen = selectors.poll_results_for_viewer(poll=poll, voter_key=voter_key, cached_tally=cached_tally)
        if seen.results is None:
            raise exceptions.PermissionDenied(seen.hidden_reason)
        results = seen.results
        body = {
            "poll": poll.slug,
            "question": poll.question,
            "total": results.total,
            "closed": results.closed,
            "version": results.version,
            "kind": poll.kind,
            "choices": [{"id": c.id, "text": c.text, "votes": c.votes} for c in results.choices],
        }
        if results.scale:
            body["average"], body["median"] = results.scale.average, results.scale.median
            body["distribution"] = [{"value": value, "votes": votes} for value, votes in results.scale.distribution]
        if results.cloud is not None:
            body["words"] = [{"text": term.text, "count": term.count} for term in results.cloud]
        return Response(body)  # JSON-ready; ResultsOutput documents it (see VoteCastView)


# --- Events ------------------------------------------------------------------------------------

EVENT_ID = OpenApiParameter("id", str, OpenApiParameter.PATH, description="The event's id (its slug).")
EVENT_NOT_FOUND = _error("No event has this id.")
OWNER_TOKEN = [{"ownerToken": []}]


def _event_body(request: Request, event: Event, **extra) -> dict:
    display = events.event_display(event=event)
    return {
        "event": event,
        "join_url": request.build_absolute_uri(reverse("web:event_phone", args=[event.code])),
        "live_url": request.build_absolute_uri(reverse("web:event_live", args=[event.code])),
        "questions": events.event_questions(event=event),
        "state": display.state.as_dict(),
        **extra,
    }


class _CreatedEventLinks(AutoSchema):
    """Links from a created event to the calls that take its id (as `_CreatedPollLinks` for polls)."""

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        by_id = {"id": "$response.body#/id"}
        operation["responses"]["201"]["links"] = {
            "ReadEvent": {"operationId": "event_get", "parameters": by_id},
            "ControlEvent": {"operationId": "event_control", "parameters": by_id},
            "VoteOnFirstQuestion": {
                "operationId": "vote_cast",
                "requestBody": {
                    "poll": "$response.body#/questions/0/id",
                    "choices": ["$response.body#/questions/0/choices/0/id"],
                },
                "description": "Refused with 403 until the presenter opens the question.",
            },
        }
        return operation


class EventCreateView(ApiView):
    permission_classes = [SameSiteOnly]

    schema = _CreatedEventLinks()

    @extend_schema(
        operation_id="event_create",
        summary="Create an event",
        description="An event is a sequence of questions behind one join code, run by its presenter.",
        request=serializers.EventCreateInput,
        examples=EVENT_EXAMPLES,
        responses={
            201: serializers.EventCreatedOutput,
            400: INVALID,
            **CREATE_REFUSALS,
        },
    )
    def post(self, request: Request) -> Response:
        fields = _validated(serializers.EventCreateInput, request.data)
        questions = [
            events.QuestionInput(**{name: value for name, value in question.items() if value is not None})
            for question in fields["questions"]
        ]
        event, _, token = events.event_create(
            title=fields["title"], questions=questions, ip_address=voters.client_address(request.META)
        )
        manage_url = request.build_absolute_uri(reverse("web:event_manage", args=[event.code, token]))
        body = serializers.EventCreatedOutput(
            _event_body(request, event, manage_url=manage_url), context={"request": request}
        ).data
        return Response(body, status=status.HTTP_201_CREATED)


class EventDetailView(ApiView):
    @extend_schema(
        operation_id="event_get",
        summary="Read an event and its state",
        parameters=[EVENT_ID],
        responses={200: serializers.EventOutput, 404: EVENT_NOT_FOUND},
    )
    def get(self, request: Request, id: str) -> Response:
        event = events.event_get(slug=id)  # Event.DoesNotExist is a 404 (api.errors)
        return Response(serializers.EventOutput(_event_body(request, event), context={"request": request}).data)


class EventControlView(ApiView):
    @extend_schema(
        operation_id="event_control",
        summary="Run an event: next, previous, go to, open, close, reveal, hide, end",
        description=(
            "Send the owner token, the last part of the `manage_url` the event was created with, as "
            "`Authorization: Bearer <token>`."
        ),
        parameters=[EVENT_ID],
        request=serializers.EventControlInput,
        examples=EVENT_CONTROL_EXAMPLES,
        auth=OWNER_TOKEN,
        responses={
            200: serializers.EventControlOutput,
            400: INVALID,
            403: _error("Without the event's owner token."),
            404: EVENT_NOT_FOUND,
            413: TOO_LARGE,
            415: NOT_JSON,
        },
    )
    def post(self, request: Request, id: str) -> Response:
        event = events.event_get(slug=id)
        if not event.owner_token_matches(_bearer_token(request)):
            raise exceptions.PermissionDenied("Send the event's owner token as 'Authorization: Bearer <token>'.")
        fields = _validated(serializers.EventControlInput, request.data)
        event = events.event_control(
            event=event, action=fields["action"], question=fields.get("question"), seconds=fields.get("seconds")
        )
        return Response({"state": events.event_state(event=event).as_dict()})


def _bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
