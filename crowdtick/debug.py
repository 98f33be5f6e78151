"""Django's debug pages (DEBUG=1), kept from failing on the request they describe."""

from django.core.exceptions import TooManyFieldsSent
from django.http import QueryDict
from django.views.debug import ExceptionReporter


class ExceptionReporterForAnyRequest(ExceptionReporter):
    """The debug page lists the request's query parameters; with more than
    DATA_UPLOAD_MAX_NUMBER_FIELDS of them reading them raises again, and the 400 it was
    describing becomes a 500. It shows none of them instead."""

    def get_traceback_data(self):
        if self.request is not None:
            try:
                self.request.GET  # noqa: B018 (read to see whether it can be read)
            except TooManyFieldsSent:
                self.request.GET = QueryDict()
        return super().get_traceback_data()
