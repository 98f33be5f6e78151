"""Content negotiation: DRF's, with a shortcut for the answer nearly every client gets anyway."""

from rest_framework.negotiation import DefaultContentNegotiation


class QuickContentNegotiation(DefaultContentNegotiation):
    """Phones' fetch calls, curl and most programs send no Accept header, or `*/*`, or ask for the
    first renderer's type exactly; DRF then picks that first renderer, after parsing and ranking the
    header on every request (a measurable share of a vote: docs/benchmarks.md). Those cases are
    answered at once with the same choice; anything else (other types, parameters, quality
    values, `?format=`) goes through DRF's full negotiation, 406 included."""

    def select_renderer(self, request, renderers, format_suffix=None):
        first = renderers[0]
        accept = request.META.get("HTTP_ACCEPT", "*/*")  # an empty header is a 406 in DRF: keep it so
        if (
            format_suffix is None
            and accept in ("*/*", first.media_type)
            and self.settings.URL_FORMAT_OVERRIDE not in request.query_params
        ):
            return first, first.media_type
        return super().select_renderer(request, renderers, format_suffix)
