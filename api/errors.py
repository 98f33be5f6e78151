"""How the API says no: every error is JSON `{"detail": str}`, plus field errors for bad input.

The domain's exceptions (a vote that cannot count, an unknown poll, a rate limit) are mapped to
status codes here, once, so the views only call services.
"""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, serializers, status
from rest_framework.views import exception_handler

from polls import services
from polls.models import Event, Poll
from polls.ratelimit import RateLimited

VOTER_REQUIRED = (
    'voter required: send "voter" (an opaque key of 1 to 64 characters that stays the same for one person).'
)


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "This conflicts with what is already recorded."
    default_code = "conflict"


class BodyTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"

    def __init__(self) -> None:
        super().__init__(f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 1024} KiB.")


class UnsupportedBody(exceptions.APIException):
    status_code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
    default_code = "unsupported_media_type"


class TooManyRequests(exceptions.APIException):
    """429; DRF's handler turns `wait` into the Retry-After header."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "throttled"

    def __init__(self, *, detail: str, wait: int) -> None:
        super().__init__(detail)
        self.wait = wait


def _as_api_exception(exc: Exception) -> Exception:
    match exc:
        case services.AlreadyVoted():
            return Conflict(exc.message)
        case services.PollClosed():
            return exceptions.PermissionDenied(exc.message)
        case services.VoterRequired():
            return exceptions.ValidationError({"voter": [VOTER_REQUIRED]})
        case services.InvalidWords():  # before InvalidValue, its parent
            return exceptions.ValidationError({"words": [exc.message]})
        case services.InvalidValue():
            return exceptions.ValidationError({"value": [exc.message]})
        case services.InvalidChoices():
            return exceptions.ValidationError({"choices": [exc.message]})
        case services.VoteRejected():
            return exceptions.ValidationError({"detail": exc.message})
        case Poll.DoesNotExist():
            return exceptions.NotFound("No poll has this id.")
        case Event.DoesNotExist():
            return exceptions.NotFound("No event has this id.")
        case RateLimited():
            return TooManyRequests(detail=exc.message, wait=exc.retry_after)
        case RequestDataTooBig():
            return BodyTooLarge()
        case TooManyFieldsSent():
            # Raised by the first read of the query string, before DRF has picked a renderer.
            most = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
            return exceptions.ValidationError({"detail": f"Too many query parameters: at most {most:,} are accepted."})
        case DjangoValidationError():
            return exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
        case exceptions.ParseError():
            return exceptions.ParseError(str(exc.detail).replace("JSON parse error - ", "The body is not valid JSON: "))
        case exceptions.UnsupportedMediaType():
            return UnsupportedBody(f"{exc.detail} Send a JSON body with the header Content-Type: application/json.")
    return exc


def api_exception_handler(exc: Exception, context: dict):
    response = exception_handler(_as_api_exception(exc), context)
    if response is not None:
        response.data = error_body(response.data)
    return response


def error_body(data) -> dict:
    """`{"detail": "…", "<field>": ["…"]}`: one sentence for people, a list of messages per field for programs."""
    if isinstance(data, dict) and set(data) == {"detail"} and isinstance(data["detail"], str):
        return {"detail": str(data["detail"])}
    if not isinstance(data, dict):
        data = {"detail": data}
    body: dict = {}
    summary: list[str] = []
    for field, errors in data.items():
        messages = _flatten(errors)
        if field in ("detail", "non_field_errors", settings.REST_FRAMEWORK.get("NON_FIELD_ERRORS_KEY", "")):
            summary.extend(messages)
        else:
            body[field] = messages
            summary.extend(f"{field}: {message}" for message in messages)
    body["detail"] = " ".join(summary) or "The request is not valid."
    return body


def _flatten(errors, prefix: str = "") -> list[str]:
    """Nested errors (a list item, a key of an object) as plain messages saying where."""
    if isinstance(errors, dict):
        return [message for key, value in errors.items() for message in _flatten(value, f"{prefix}item {key}: ")]
    if isinstance(errors, list):
        return [message for error in errors for message in _flatten(error, prefix)]
    return [f"{prefix}{errors}"]


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, in a sentence a person understands.")


# 400: `detail` sums it up; each invalid field also maps to its list of messages. A raw schema,
# because a serializer cannot say "any other key maps to a list of strings".
VALIDATION_ERROR_SCHEMA = {
    "type": "object",
    "required": ["detail"],
    "properties": {"detail": {"type": "string", "description": "All problems, in sentences a person understands."}},
    "additionalProperties": {"type": "array", "items": {"type": "string"}, "description": "A field's messages."},
}
