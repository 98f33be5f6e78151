"""PostgreSQL backend whose every wait on the server is bounded, so a frozen database answers 503.

A PostgreSQL process that is stopped (SIGSTOP, a VM paused, a storage stall) keeps its sockets
open: the kernel still completes TCP handshakes and acknowledges what we send, so libpq waits for
an answer forever and every request thread hangs with it. Here each wait is bounded by
`DB_WAIT_TIMEOUT` seconds (connections by `connect_timeout`); past it the connection, whose state
is then unknown, is closed, Django raises OperationalError and `crowdtick.middleware` answers
503 with Retry-After. A circuit breaker (`breaker.py`) then fails the other threads fast instead
of letting each of them wait out its own timeout.

Settings: `ENGINE = "crowdtick.db_backend"`; settings.py selects it for every PostgreSQL URL.
"""
