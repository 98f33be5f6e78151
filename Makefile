# CrowdTick: the commands of DESIGN.md. `make run` and `make test` need nothing but Python 3.12+.
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint migrate stack bench bench-live bench-reconcile loadtest chaos soak screenshots clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -x $(PY) || { python=$$(scripts/find-python) && $$python -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

## make run: the whole site (HTTP and WebSockets) on embedded defaults, at http://127.0.0.1:8000. Safe by default:
## DEBUG off (DEBUG=1 make run for debug pages), a SECRET_KEY made once into $(SECRET_KEY_FILE) (git-ignored, 0600),
## X-Forwarded-For ignored (uvicorn --no-proxy-headers; CLIENT_IP_HEADER names a header to trust behind a proxy)
SECRET_KEY_FILE ?= .secret_key
run: $(VENV)/.installed
	@key=$$($(PY) scripts/secret_key.py $(SECRET_KEY_FILE)) && export SECRET_KEY="$${SECRET_KEY:-$$key}" \
	  DEBUG="$${DEBUG:-0}" && $(PY) manage.py migrate --no-input && \
	  exec $(VENV)/bin/uvicorn crowdtick.asgi:application --host $(HOST) --port $(PORT) --ws websockets \
	    --no-proxy-headers --ws-max-size 4096

# checkov (deploy/k8s's scan) cannot share .venv: requirements-checkov.txt says why.
CHECKOV_VENV := .venv-checkov
$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || { python=$$(scripts/find-python) && $$python -m venv $(CHECKOV_VENV); }
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	@touch $@

## make test: the whole suite; against PostgreSQL, Redis and Celery too when DATABASE_URL and REDIS_URL are set
test: $(VENV)/.installed $(CHECKOV_VENV)/.installed
	SECRET_KEY=$${SECRET_KEY:-test-only-secret-key-not-for-production} $(PY) -m pytest $(PYTEST_ARGS)

## make stack: nginx on :8080, 2 gunicorn + 2 ASGI, Celery worker and beat, the broadcaster; Ctrl-C stops all
stack: $(VENV)/.installed
	scripts/stack

## make bench: starts the stack, measures /healthz, the votes and the results (wrk, c=100, 3 runs); writes docs/benchmarks.md
bench: $(VENV)/.installed
	$(PY) bench/run.py $(BENCH_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

migrate: $(VENV)/.installed
	DEBUG=$${DEBUG:-1} $(PY) manage.py migrate --no-input

## make loadtest: two profiles, each on a stack started fresh: the hall (an event: its presenter opens a question a
## minute for 20 s and every phone votes in it; steps 100 → 4,000 users), then the public site (thousands of polls
## created, votes and reads over a long tail, 100 → 2,000 users, rate limits off); /healthz and mix ceilings, every
## vote checked; writes docs/loadtest/ (LOADTEST_ARGS="--profile public --steps 100,1000 --step-seconds 20" for a
## short run of one; --help lists the options)
loadtest: $(VENV)/.installed
	$(PY) loadtest/run.py $(LOADTEST_ARGS)

## make soak: 1,000 users for 30 minutes on the stack; memory growth per process and errors per window,
## written to docs/reliability.md (SOAK_ARGS="--users 200 --minutes 3" for a short run; --help lists the options)
soak: $(VENV)/.installed
	$(PY) loadtest/soak.py $(SOAK_ARGS)

## make chaos: a private stack under faults (Celery worker, Redis, gunicorn, ASGI killed; PostgreSQL paused), 10,000
## votes each, every one checked; writes docs/reliability.md (CHAOS_ARGS="--scenarios postgres --attempts 2000")
chaos: $(VENV)/.installed
	$(PY) chaos/run.py $(CHAOS_ARGS)

## make screenshots: landing, poll, results and owner pages at phone and desktop width, into docs/screenshots/
screenshots: $(VENV)/.installed
	DEBUG=1 $(PY) scripts/screenshots.py

## make bench-live: 100, 1,000 and 5,000 WebSocket viewers on one poll while votes arrive at 200/s
## through the stack (started on CT_HTTP_PORT, default 8090); writes docs/benchmarks.md
## It also measures "next question": an event's presenter POSTs next, until the question is on 1,000 and 5,000 phones
## (BENCH_LIVE_ARGS="--only next-question" for that alone)
bench-live: $(VENV)/.installed
	$(PY) bench/live/run.py $(BENCH_LIVE_ARGS)

## make bench-reconcile: a reconcile pass over 10,000 active polls with 100 of them changed, and the catch-up
## pass over all of them; in a database of its own; writes its section of docs/benchmarks.md
bench-reconcile: $(VENV)/.installed
	$(PY) bench/reconcile.py $(BENCH_RECONCILE_ARGS)

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) db.sqlite3 staticfiles .pytest_cache
