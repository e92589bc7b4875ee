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

# The optional MLflow extra: the tests need it (README, "MLflow"); serving does not.
$(VENV)/.deps-mlflow: requirements-mlflow.txt $(VENV)/.deps
	$(BIN)/pip install --quiet -r requirements-mlflow.txt
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

# The whole suite: everything but tests/e2e on both cores, then tests/e2e alone (its
# servers, load and latency checks must not share the cores with other tests).
test: $(VENV)/.deps $(VENV)/.deps-mlflow
	$(BIN)/python -m pytest -n 2 --ignore=tests/e2e
	$(BIN)/python -m pytest tests/e2e

# The unit layer: everything but tests/e2e (real servers, browsers, killed processes)
# and the PostgreSQL runs of the store tests.
test-fast: $(VENV)/.deps $(VENV)/.deps-mlflow
	$(BIN)/python -m pytest --ignore=tests/e2e -m "not postgres and not slow" -q -n 2

lint: $(VENV)/.deps
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy && $(BIN)/lint-imports

bench: $(VENV)/.deps
	$(BIN)/python benchmarks/run_all.py
