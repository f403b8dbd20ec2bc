# Set-up and everyday commands. `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test bench lint format worker beat clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py setup_demo --base-url http://$(HOST):$(PORT)
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

# With no DATABASE_URL, the benchmarks get throwaway PostgreSQL and Redis servers (installed
# from Debian packages when missing), as CI does.
bench: install
	@if [ -n "$$DATABASE_URL" ]; then $(BIN)/python -m tests.bench $(BENCH_ARGS); else \
		bash -c 'set -e; source .ci/services.sh; services_install; services_start; \
			trap services_stop EXIT; $(BIN)/python -m tests.bench $(BENCH_ARGS)'; fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

worker: install
	$(BIN)/celery -A cdp worker -Q $$($(BIN)/python -m cdp.queues) --loglevel INFO

beat: install
	$(BIN)/celery -A cdp beat --loglevel INFO

clean:
	rm -rf $(VENV) db.sqlite3* staticfiles .pytest_cache .mypy_cache .ruff_cache
