"""The psycopg connection class of the backend: every wait on the server is bounded."""

import psycopg
from django.conf import settings
from psycopg import errors

from crowdtick.db_backend.breaker import breaker

DEFAULT_WAIT_TIMEOUT = 3.0


def wait_timeout() -> float | None:
    """`DB_WAIT_TIMEOUT` seconds; 0 means wait forever (e.g. for a long migration)."""
    seconds = getattr(settings, "DB_WAIT_TIMEOUT", DEFAULT_WAIT_TIMEOUT)
    return seconds or None


class BoundedWaitConnection(psycopg.Connection):
    def wait(self, gen, interval=0.1, timeout=None):
        bound = wait_timeout() if timeout is None else timeout
        try:
            result = super().wait(gen, interval=interval, timeout=bound)
        except errors._WaitTimeout:
            # The server may or may not have run the statement, and the protocol is mid-exchange:
            # this connection cannot be used again. Closing it makes Django open a new one.
            self.pgconn.finish()
            breaker.failed()
            raise
        breaker.succeeded()
        return result
