"""Middleware the settings alone cannot express: owner pages kept out of caches, 503 when the database is down."""

import logging
from inspect import iscoroutinefunction

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers
from django.utils.decorators import sync_and_async_middleware

logger = logging.getLogger(__name__)


def _keep_owner_pages_out_of_caches(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    # An owner URL carries the poll's secret token, and its pages and CSV export show what only
    # the owner may see: no shared cache may keep them, and the browser must not store them
    # on disk or show them again from history to whoever uses the device next.
    match = request.resolver_match
    if match is not None and "token" in match.kwargs:
        add_never_cache_headers(response)  # no-cache, no-store, must-revalidate, private
    return response


@sync_and_async_middleware
def owner_pages_never_cached(get_response):
    if iscoroutinefunction(get_response):

        async def middleware(request):
            return _keep_owner_pages_out_of_caches(request, await get_response(request))

    else:

        def middleware(request):
            return _keep_owner_pages_out_of_caches(request, get_response(request))

    return middleware


class DatabaseUnavailableMiddleware:
    """Answers 503 with Retry-After when the database does not answer, instead of a 500.

    `crowdtick.db_backend` turns a frozen PostgreSQL into OperationalError within its wait bound
    (or at once while its breaker is open); this says so to the client: JSON `{"detail"}` for the
    API, a short page (or an HTMX fragment) for people. Nothing was confirmed, so retrying is safe:
    a vote sent again is counted once.
    """

    API_DETAIL = "The database is not answering right now; nothing was recorded. Try again in a few seconds."

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponseBase | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.warning("Database unavailable for %s %s: %s", request.method, request.path, exception)
        if request.path.startswith("/api/"):
            response: HttpResponseBase = JsonResponse({"detail": self.API_DETAIL}, status=503)
        elif getattr(request, "htmx", False):
            response = TemplateResponse(request, "503.html#message", status=503)
        else:
            response = TemplateResponse(request, "503.html", status=503)
        response["Retry-After"] = str(settings.DB_RETRY_AFTER)
        add_never_cache_headers(response)
        return response
