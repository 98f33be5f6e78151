"""Django's PostgreSQL backend with bounded waits and a circuit breaker (see the package docstring)."""

import psycopg
from django.db.backends.postgresql import base

from crowdtick.db_backend.breaker import breaker
from crowdtick.db_backend.connection import BoundedWaitConnection, wait_timeout

CONNECT_TIMEOUT = 2  # seconds; libpq's minimum that counts is 2


class _Driver:
    """The psycopg module as Django sees it, connecting with BoundedWaitConnection."""

    connect = staticmethod(BoundedWaitConnection.connect)

    def __getattr__(self, name):
        return getattr(psycopg, name)


class DatabaseWrapper(base.DatabaseWrapper):
    Database = _Driver()

    def get_connection_params(self):
        params = super().get_connection_params()
        params.setdefault("connect_timeout", CONNECT_TIMEOUT)
        return params

    @property
    def pool(self):
        options = self.settings_dict["OPTIONS"]
        if options.get("pool") is True:
            options["pool"] = {}
        if isinstance(options.get("pool"), dict):
            options["pool"].setdefault("connection_class", BoundedWaitConnection)
        return super().pool

    def get_new_connection(self, conn_params):
        breaker.before_use(probe_seconds=CONNECT_TIMEOUT + (wait_timeout() or 0))
        try:
            connection = super().get_new_connection(conn_params)
        except psycopg.OperationalError:  # psycopg_pool.PoolTimeout is one too
            breaker.failed()
            raise
        breaker.succeeded()
        return connection

    def _cursor(self, name=None):
        breaker.before_use(probe_seconds=wait_timeout() or 0)
        return super()._cursor(name)
