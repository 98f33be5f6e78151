"""Security middleware the settings alone cannot express."""

from inspect import iscoroutinefunction

from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import add_never_cache_headers
from django.utils.decorators import sync_and_async_middleware


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
