"""A process-local circuit breaker for the database.

Why: with 8 threads per gunicorn worker and a frozen PostgreSQL, each request would wait out its
own `DB_WAIT_TIMEOUT` before failing, so the whole process serves nothing for seconds at a time.
After a timeout or a failed connect the breaker opens: for `OPEN_SECONDS` every use of the
database fails at once. Then one caller probes (its query runs with the normal bound) while the
others still fail fast; its success closes the breaker, its failure opens it again.
No shared state between processes: each one learns on its own, within one timeout.
"""

import threading
import time

from django.db import OperationalError

OPEN_SECONDS = 1.5


class DatabaseUnavailable(OperationalError):
    """The breaker is open: the database did not answer a moment ago."""


class Breaker:
    def __init__(self, open_seconds: float = OPEN_SECONDS) -> None:
        self.open_seconds = open_seconds
        self._lock = threading.Lock()
        self._open_until = 0.0  # 0: closed
        self._probe_until = 0.0  # a probe is under way until then
        self._prober: int | None = None  # its thread, which connects and then queries

    def before_use(self, *, probe_seconds: float) -> None:
        """Raises DatabaseUnavailable while open; lets one caller through once the window has passed."""
        if self._open_until == 0.0:  # the common case, without taking the lock
            return
        with self._lock:
            now = time.monotonic()
            if self._open_until == 0.0 or self._prober == threading.get_ident():
                return
            if now < self._open_until or now < self._probe_until:
                raise DatabaseUnavailable("The database did not answer a moment ago; not trying again yet.")
            # A probe that never reports back (its thread died) only blocks others for its own bound.
            self._probe_until = now + probe_seconds
            self._prober = threading.get_ident()

    def failed(self) -> None:
        with self._lock:
            self._open_until = time.monotonic() + self.open_seconds
            self._probe_until, self._prober = 0.0, None

    def succeeded(self) -> None:
        if self._open_until == 0.0:
            return
        with self._lock:
            self._open_until = self._probe_until = 0.0
            self._prober = None


breaker = Breaker()
