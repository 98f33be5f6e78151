"""gunicorn settings shared by every web instance (the bind address comes from the command line).

gthread workers: a vote spends most of its time waiting on PostgreSQL and Redis, so threads
overlap that wait while each worker process keeps one Python interpreter busy. Measured on the
2-core development machine, a bare Django view serves ~6,500 req/s under gthread against
~4,800 with sync workers and ~1,500 with uvicorn workers (docs/benchmarks.md).
"""

import os

# One process of 8 threads per instance (2 instances: 2 processes for the 2 cores) rather than 2 of 4:
# the same 16 threads, but with 4 GIL-bound processes next to PostgreSQL, nginx and Redis on 2 cores,
# requests queued on a descheduled process waited for it. make bench before and after (docs/benchmarks.md):
# p99 /healthz 301 -> 116 ms, results 568 -> 140 ms, votes 383-386 -> 240-241 ms, requests/s within the
# noise. Raise WEB_WORKERS with the cores.
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
