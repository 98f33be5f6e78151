"""A frozen PostgreSQL (SIGSTOP: the kernel still accepts and acknowledges) must not hang requests.

The fake server below completes the startup exchange, then never answers again: the same thing a
stopped PostgreSQL does to an open connection. Each test has a hang guard (a join with a generous
timeout) so a broken bound fails the test instead of blocking the suite.
"""

import socket
import struct
import threading

import pytest
from django.db import OperationalError
from django.db.utils import ConnectionHandler

from crowdtick.db_backend.breaker import DatabaseUnavailable, breaker

HANG_GUARD_SECONDS = 30


class FrozenServer:
    """Accepts connections; answers the startup (unless `answers_startup` is off), then nothing."""

    def __init__(self, *, answers_startup: bool) -> None:
        self.answers_startup = answers_startup
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            self.sockets.append(conn)
            if self.answers_startup:
                threading.Thread(target=self._startup, args=(conn,), daemon=True).start()

    def _startup(self, conn: socket.socket) -> None:
        length, code = struct.unpack("!ii", _read(conn, 8))
        if code in (80877103, 80877104):  # SSLRequest, GSSENCRequest: "not here"
            conn.sendall(b"N")
            length, code = struct.unpack("!ii", _read(conn, 8))
        _read(conn, length - 8)  # the rest of the StartupMessage
        auth_ok = b"R" + struct.pack("!ii", 8, 0)
        version = b"server_version\x0015.0\x00"
        status = b"S" + struct.pack("!i", 4 + len(version)) + version
        ready = b"Z" + struct.pack("!i", 5) + b"I"
        conn.sendall(auth_ok + status + ready)
        # From here on it reads nothing and answers nothing, like a stopped process.

    def close(self) -> None:
        self.listener.close()
        for conn in self.sockets:
            conn.close()


def _read(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("client left")
        data += chunk
    return data


@pytest.fixture(autouse=True)
def _closed_breaker():
    breaker.succeeded()
    yield
    breaker.succeeded()  # the other tests' database must not inherit an open breaker


def _frozen_connection(server: FrozenServer):
    handler = ConnectionHandler(
        {
            "default": {
                "ENGINE": "crowdtick.db_backend",
                "NAME": "frozen",
                "USER": "postgres",
                "HOST": "127.0.0.1",
                "PORT": server.port,
                "OPTIONS": {"sslmode": "disable"},
            }
        }
    )
    return handler["default"]


def _outcome(action) -> BaseException | None:
    """Runs `action` in a thread; returns what it raised (None if it returned), failing on a hang."""
    result: list[BaseException | None] = []

    def run():
        try:
            action()
            result.append(None)
        except BaseException as error:  # the test looks at it
            result.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_GUARD_SECONDS)
    assert result, "the query hung on a frozen server"
    return result[0]


def _select_one(connection) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


@pytest.mark.django_db
def test_a_query_to_a_frozen_server_fails_and_drops_the_connection(settings):
    settings.DB_WAIT_TIMEOUT = 1
    server = FrozenServer(answers_startup=True)
    connection = _frozen_connection(server)
    try:
        error = _outcome(lambda: _select_one(connection))
        assert isinstance(error, OperationalError)
        assert connection.connection is None or connection.connection.closed
    finally:
        connection.close()
        server.close()


@pytest.mark.django_db
def test_a_connect_to_a_frozen_server_fails_instead_of_hanging(settings):
    server = FrozenServer(answers_startup=False)
    connection = _frozen_connection(server)
    try:
        assert isinstance(_outcome(lambda: _select_one(connection)), OperationalError)
    finally:
        server.close()


@pytest.mark.django_db
def test_after_a_timeout_other_queries_fail_at_once_without_reaching_the_server(settings):
    settings.DB_WAIT_TIMEOUT = 1
    server = FrozenServer(answers_startup=True)
    first, second = _frozen_connection(server), _frozen_connection(server)
    try:
        _outcome(lambda: _select_one(first))
        accepted = server.accepted
        assert isinstance(_outcome(lambda: _select_one(second)), DatabaseUnavailable)
        assert server.accepted == accepted
    finally:
        first.close()
        server.close()


def test_the_breaker_lets_one_probe_through_once_its_window_has_passed():
    from crowdtick.db_backend.breaker import Breaker, DatabaseUnavailable

    tested = Breaker(open_seconds=0)
    tested.failed()
    tested.before_use(probe_seconds=60)  # the probe
    tested.succeeded()
    refused = []
    # Two other threads, alive together (a finished thread's id may be reused): an open breaker would
    # take one of them for a new probe and refuse the other.
    both_asked = threading.Barrier(3)

    def another_thread_uses_it():
        try:
            tested.before_use(probe_seconds=60)
        except DatabaseUnavailable as error:
            refused.append(error)
        both_asked.wait()

    others = [threading.Thread(target=another_thread_uses_it) for _ in range(2)]
    for other in others:
        other.start()
    both_asked.wait()
    for other in others:
        other.join()
    assert refused == []  # closed again: every thread goes through


def test_the_probing_thread_may_connect_and_then_query_while_others_still_wait():
    from crowdtick.db_backend.breaker import Breaker

    tested = Breaker(open_seconds=0)
    tested.failed()
    tested.before_use(probe_seconds=60)  # the probe's connect...
    tested.before_use(probe_seconds=60)  # ...and its first query, in the same thread
    others: list[BaseException] = []

    def another_thread():
        try:
            tested.before_use(probe_seconds=60)
        except DatabaseUnavailable as error:
            others.append(error)

    thread = threading.Thread(target=another_thread)
    thread.start()
    thread.join()
    assert others
