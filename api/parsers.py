"""Request bodies the API reads: JSON, within the site's size limit."""

import io

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import exceptions
from rest_framework.parsers import JSONParser

from api.errors import BodyTooLarge


class BoundedJSONParser(JSONParser):
    """JSON, refusing bodies over DATA_UPLOAD_MAX_MEMORY_SIZE before parsing them.

    DRF reads the request stream directly, which bypasses Django's own size check.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            body = stream.read(limit + 1)
        except RequestDataTooBig:
            raise BodyTooLarge() from None
        if len(body) > limit:
            raise BodyTooLarge()
        try:
            return super().parse(io.BytesIO(body), media_type, parser_context)
        except RecursionError:
            # `[[[[…]]]]` a hundred thousand deep fits in 256 KiB and exhausts Python's stack.
            raise exceptions.ParseError("The body is not valid JSON: it is nested too deeply.") from None
