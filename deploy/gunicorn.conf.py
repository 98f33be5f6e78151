"""gunicorn settings shared by every web instance (the bind address comes from the command line).

gthread workers: a vote spends most of its time waiting on PostgreSQL and Redis, so threads
overlap that wait while each worker process keeps one Python interpreter busy. The figures behind
these settings: docs/benchmarks.md, "The figures behind the settings".
"""

import os

# One GIL-bound process per instance and core: with more processes than cores, requests queued on a
# descheduled process wait for it. Raise WEB_WORKERS with the cores.
workers = int(os.environ.get("WEB_WORKERS", "1"))
threads = int(os.environ.get("WEB_THREADS", "8"))
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
