"""Keeps owner tokens out of every log line this process writes.

An owner link (`/p/<slug>/manage/<token>/…`, and its WebSocket twin) is the only credential a
poll has, and it travels in the URL path. Anything that logs a path or a Referer would write it
down: Django's request and CSRF warnings ("Bad Request: /p/…/manage/<token>/settings/"), the
access logs of uvicorn (`make run`) and gunicorn, gunicorn's "Error handling request" line.
Rather than trust every handler and format to be configured right, the token is masked when a
log record is created: `install()` wraps the process's log record factory, so no logger,
handler or formatter ever sees it. `configure_logging` is Django's `LOGGING_CONFIG`, so every
process that sets Django up (gunicorn and uvicorn workers, Celery, manage.py) installs it.

The mask also covers tracebacks (an exception's text can hold the path: Channels' "No route
found for path 'ws/polls/…/manage/<token>'"): the traceback is formatted and masked when the
record is made. Paths match in any case (`/p/x/MANAGE/<token>/` is logged as a 404 too).

Records of `django.security.*` loggers (a forged Host, too many fields) are client errors answered
400: their message says it all, so their traceback is dropped.

nginx does not log through Python: its access log must mask the token itself (deploy/nginx).
"""

import logging
import logging.config
import re
from collections.abc import MutableMapping
from typing import Any

OWNER_TOKEN_IN_PATH = re.compile(r"(/manage/)[^/?#\s\"']+", re.IGNORECASE)
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """`text` with the token of every owner path in it replaced by `[redacted]`."""
    return OWNER_TOKEN_IN_PATH.sub(rf"\g<1>{REDACTED}", text)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, int | float | bytes) or value is None:
        return value
    # Objects formatted with %s (a request, a URL object): keep them unless their text has a token.
    text = str(value)
    masked = redact(text)
    return masked if masked != text else value


_TRACEBACK_FORMATTER = logging.Formatter()


def redact_record(record: logging.LogRecord) -> None:
    if record.exc_info and record.name.startswith("django.security."):
        record.exc_info = None
    if record.exc_info and record.exc_info[0] is not None:
        # Formatters reuse `exc_text` when it is set, so the masked text is what every handler writes.
        record.exc_text = redact(_TRACEBACK_FORMATTER.formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    if isinstance(record.msg, str):
        record.msg = redact(record.msg)
    args = record.args
    if isinstance(args, tuple):
        record.args = tuple(_redacted(value) for value in args)
    elif isinstance(args, MutableMapping):
        # In place: gunicorn's access atoms are a dict subclass whose lookups its format relies on.
        for key, value in list(args.items()):
            args[key] = _redacted(value)


def install() -> None:
    """Masks owner tokens in every log record created from now on, in this process (idempotent)."""
    create_record = logging.getLogRecordFactory()
    if getattr(create_record, "redacts_owner_tokens", False):
        return

    def create_redacted_record(*args, **kwargs) -> logging.LogRecord:
        record = create_record(*args, **kwargs)
        redact_record(record)
        return record

    create_redacted_record.redacts_owner_tokens = True
    logging.setLogRecordFactory(create_redacted_record)


def configure_logging(logging_settings: dict | None) -> None:
    """Django's `LOGGING_CONFIG`: the token mask first, then `settings.LOGGING` as usual."""
    install()
    if logging_settings:
        logging.config.dictConfig(logging_settings)
