# Clicktrail: `make run` serves a demo on SQLite, `make test` runs the whole suite.
SHELL := /bin/bash
# The first of these that is Python 3.11 or newer (Django 5.2 supports 3.10-3.14; we need
# 3.11+). Override with `make PYTHON=/path/to/python …`.
PYTHON ?= $(firstword $(foreach py,python3.13 python3.12 python3.11 python3,\
  $(if $(shell command -v $(py) >/dev/null 2>&1 && $(py) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && echo ok),$(py))))
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
# PostgreSQL when one answers locally and DATABASE_URL is not set, else SQLite.
LOCAL_PG := postgres://postgres@127.0.0.1:5432/clicktrail

.PHONY: run test venv install install-dev chromium lint format migrations-check bench bench-reports bench-retention serve bench-deliveries bench-compare bench-against

$(BIN)/python:
	@[ -n "$(PYTHON)" ] && command -v $(PYTHON) >/dev/null \
	  || { echo "Python 3.11 or newer is required (python3.13, python3.12, python3.11 or python3)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

venv: $(BIN)/python

install: venv
	$(BIN)/pip install --quiet -e .

install-dev: venv
	$(BIN)/pip install --quiet -e '.[dev]'

run: install
	@export DJANGO_SETTINGS_MODULE=config.settings.local DATABASE_URL=$${DATABASE_URL:-sqlite:///$(CURDIR)/db.sqlite3}; \
	$(BIN)/python manage.py migrate --no-input -v0 && \
	$(BIN)/python manage.py collectstatic --no-input -v0 && \
	$(BIN)/python manage.py demo_data --if-empty && \
	$(BIN)/python manage.py bootstrap_admin && \
	echo "Clicktrail is serving on http://127.0.0.1:$(PORT)/admin/ (Ctrl-C stops it)" && \
	{ $(BIN)/python manage.py deliver_postbacks -v0 & worker=$$!; trap 'kill $$worker 2>/dev/null' EXIT; } && \
	$(BIN)/gunicorn -c config/gunicorn.py --bind 127.0.0.1:$(PORT) --workers 2 config.wsgi

# Browser tests drive Debian's Chromium; install it when missing and we may.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || { echo "could not install chromium"; exit 1; }; \
	  else echo "Install Debian's chromium (/usr/bin/chromium) for the browser tests"; exit 1; fi; \
	fi

test: install-dev chromium
	@if [ -z "$$DATABASE_URL" ] && command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1; then \
	  export DATABASE_URL=$(LOCAL_PG); fi; \
	echo "Running the suite on $${DATABASE_URL:-SQLite}"; \
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrations-check: install-dev
	DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/python manage.py makemigrations --check --dry-run

# The tracking path under load (gunicorn, production settings, PostgreSQL, wrk).
bench: install-dev
	$(BIN)/python -m bench.postbacks $(BENCH_ARGS)

# What the offer rules (BENCH_ARGS="--with rules", the default) or a publisher postback
# ("--with publisher-postbacks") cost accepted postbacks: the rate with them against the rate
# without, alternated run by run in one server on the make bench database.
bench-compare: install-dev
	$(BIN)/python -m bench.compare $(BENCH_ARGS)

# Postbacks against an earlier commit (REF), both servers loaded at once by two wrk: each on
# its own bench database, the earlier one in its own worktree and virtualenv under
# bench/results/. E.g. REF=e9bc1de (before the record lifecycle, #15); BENCH_ARGS e.g.
# "--runs 10 --only conversion,event", "--write-docs" to update docs/benchmarks.md.
bench-against: install-dev
	$(BIN)/python -m bench.against --ref $(REF) $(BENCH_ARGS)

# Reports, list totals and CSV export over 10M event records in the clicktrail_bench
# database (created and loaded once, then reused); writes docs/benchmarks.md.
bench-reports: install-dev
	$(BIN)/python -m bench.reports $(BENCH_ARGS)

# Publisher postback deliveries per second to a local receiver (100 ms and 0 ms answers, one
# and two workers) in the clicktrail_bench_deliveries database; BENCH_ARGS e.g.
# "--deliveries 2000 --rounds 1" for a quick look, "--write-docs" to update docs/benchmarks.md.
bench-deliveries: install-dev
	$(BIN)/python -m bench.deliveries $(BENCH_ARGS)

# Monthly partitions and retention (docs/benchmarks.md "Retention"): rates with the log as one
# table and partitioned, dropping a month of 10M log rows, postbacks during a prune run; in
# the clicktrail_bench_retention database. Small: BENCH_ARGS="--log-rows 30000
# --old-clicks 5000 --clicks 20000 --duration 3 --rounds 1".
bench-retention: install-dev
	$(BIN)/python -m bench.retention $(BENCH_ARGS)
