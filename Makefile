# Two commands on a fresh machine:  make run  (set up + serve)   make test
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: run setup serve test test-fast lint bench cron

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.deps: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

setup: $(VENV)/.deps
	$(BIN)/python -m monitoring setup --if-needed

serve: setup
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

run: serve

# The crontab line of cronjob.txt for this checkout (its folder and virtualenv):
#   (crontab -l 2>/dev/null; make -s cron) | crontab -
cron:
	@sed -e 's|/path/to/risk-monitoring/.venv|$(abspath $(VENV))|g' \
	     -e 's|/path/to/risk-monitoring|$(CURDIR)|g' cronjob.txt

# The whole suite, in one process (a pytest-xdist worker once hung starting a thread;
# the fast layer below still uses both cores).
test: $(VENV)/.deps
	$(BIN)/python -m pytest

# The unit layer: everything but tests/e2e (real servers, browsers, killed processes)
# and the PostgreSQL runs of the store tests.
test-fast: $(VENV)/.deps
	$(BIN)/python -m pytest --ignore=tests/e2e -m "not postgres and not slow" -q -n 2

lint: $(VENV)/.deps
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy && $(BIN)/lint-imports

bench: $(VENV)/.deps
	$(BIN)/python benchmarks/run_all.py
