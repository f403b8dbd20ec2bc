# Set-up and everyday commands. `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test test-fast serve bench lint format worker beat clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml sdk/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,ml]'
	$(BIN)/pip install --quiet -e ./sdk/python  # the first-party SDK, tested against the server
	touch $@

# Local development: DEBUG on (debug pages, static files from the source tree, a dev key).
run: export DEBUG = 1
run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py setup_demo --base-url http://$(HOST):$(PORT)
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

# The quick loop: SQLite and in-process tasks, no browser, Redis or worker tests, stop at the
# first failure.
test-fast: install
	env -u DATABASE_URL -u REDIS_URL $(BIN)/pytest -x -q -p no:cacheprovider \
		--ignore=tests/e2e -m 'not redis and not worker' $(PYTEST_ARGS)

# The production set-up on one machine: DATABASE_URL, REDIS_URL, SECRET_KEY, ALLOWED_HOSTS,
# CDP_ENCRYPTION_KEYS and CDP_HASH_SECRET
# from the environment (or .env); gunicorn, a Celery worker and celery beat from the Procfile.
serve: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput
	PATH="$(CURDIR)/$(BIN):$$PATH" HOST=$(HOST) $(BIN)/honcho start --port $(PORT)

# With no DATABASE_URL, the benchmarks get throwaway PostgreSQL and Redis servers (installed
# from Debian packages when missing), as CI does.
# They run with DEBUG on unless told otherwise, as the figures in docs/benchmarks.md were taken.
bench: export DEBUG ?= 1
bench: install
	@if [ -n "$$DATABASE_URL" ]; then $(BIN)/python -m tests.bench $(BENCH_ARGS); else \
		bash -c 'set -e; source .ci/services.sh; services_install; services_start; \
			trap services_stop EXIT; $(BIN)/python -m tests.bench $(BENCH_ARGS)'; fi

# mypy's Django plugin loads the settings, which need DEBUG on (or production variables).
lint: export DEBUG ?= 1
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Companions of `make run` (set REDIS_URL): same DEBUG default.
worker: export DEBUG ?= 1
worker: install
	$(BIN)/celery -A cdp worker -Q $$($(BIN)/python -m cdp.queues) --loglevel INFO

beat: export DEBUG ?= 1
beat: install
	$(BIN)/celery -A cdp beat --loglevel INFO

clean:
	rm -rf $(VENV) db.sqlite3* staticfiles .pytest_cache .mypy_cache .ruff_cache
