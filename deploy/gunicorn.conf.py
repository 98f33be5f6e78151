"""gunicorn settings shared by every web instance (the bind address comes from the command line).

gthread workers: a vote spends most of its time waiting on PostgreSQL and Redis, so threads
overlap that wait while each worker process keeps one Python interpreter busy. Measured on the
2-core development machine, a bare Django view serves ~6,500 req/s under gthread against
~4,800 with sync workers and ~1,500 with uvicorn workers (docs/benchmarks.md).
"""

import os

workers = int(os.environ.get("WEB_WORKERS", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
worker_class = "gthread"
# nginx keeps connections to gunicorn open (upstream keepalive); hold them as long as it does.
keepalive = 75
# A worker stuck longer than this is replaced; CSV exports stream, so each write resets the clock.
timeout = 60
graceful_timeout = 10
# Access logs are nginx's job; gunicorn only reports errors.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "warning").lower()
