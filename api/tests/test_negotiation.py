"""The negotiation shortcut answers exactly as DRF's own negotiation does, only sooner."""

import pytest
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from api.negotiation import QuickContentNegotiation

ACCEPT_HEADERS = [
    None,
    "",
    "*/*",
    "application/json",
    "text/html",
    "application/json; indent=4",
    "text/html, application/json;q=0.9",
    "application/*",
    "image/png",
]


def choose(negotiation, accept, query, renderers):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(APIRequestFactory().get(f"/api/polls/x/results/{query}", **headers))
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers)
    except exceptions.NotAcceptable:
        return "406"
    return type(renderer).__name__, media_type


@pytest.mark.parametrize("renderers", [[JSONRenderer()], [BrowsableAPIRenderer(), JSONRenderer()]])
@pytest.mark.parametrize("query", ["", "?format=json", "?format=api"])
@pytest.mark.parametrize("accept", ACCEPT_HEADERS)
def test_the_shortcut_chooses_what_drf_chooses(accept, query, renderers):
    try:
        expected = choose(DefaultContentNegotiation(), accept, query, renderers)
    except Exception as error:  # e.g. Http404 for a format no renderer has
        with pytest.raises(type(error)):
            choose(QuickContentNegotiation(), accept, query, renderers)
        return
    assert choose(QuickContentNegotiation(), accept, query, renderers) == expected


def test_the_api_still_refuses_a_type_it_cannot_send(client):
    response = client.get("/api/polls/nosuchpoll/results/", headers={"Accept": "text/html"})
    assert response.status_code == 406
