# Strata: the two commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test test-embedded soak install chromium node-deps lint stop bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## make run: install, migrate, seed the demo account (and once, a week of demo events), then
## web + worker until Ctrl-C.
run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	$(PY) manage.py seed_demo_events
	$(PY) manage.py serve

## make test: install what the tests need, then lint, the import layers, the type check,
## migration and deploy checks, the suite. import-linter has no `python -m` entry (`-m
## importlinter.cli` silently does nothing), hence its script.
test: install chromium node-deps
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy
	$(PY) manage.py makemigrations --check --dry-run
	DEBUG=0 SECRET_KEY=check-deploy-only-never-a-real-secret-key-for-ci-$$RANDOM-$$RANDOM-$$RANDOM-$$RANDOM-xyz \
	  ALLOWED_HOSTS=strata.example.com STRATA_TOKEN_PEPPER=check-deploy-pepper \
	  $(PY) manage.py check --deploy --fail-level WARNING
	$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

## The tests that connect to the database on their own or start processes, on the embedded
## server whatever DATABASE_URL says: what `make test` on a fresh clone runs them against.
## .ci/run calls it after `make test`.
test-embedded: install chromium node-deps
	env -u DATABASE_URL $(PY) -m pytest -n 2 --dist loadgroup -m "own_connection or slow" $(PYTEST_ARGS)

## The one-minute soak (tests/cdp_site/test_soak.py; bench/soak.py for longer runs).
soak: install
	STRATA_SOAK=1 $(PY) -m pytest -p no:cacheprovider tests/cdp_site/test_soak.py $(PYTEST_ARGS)

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

## The npm packages of tests that run real JavaScript clients (tests/node), when Node is here.
node-deps:
	@if command -v node >/dev/null 2>&1; then cd tests/node && npm ci --no-audit --no-fund --silent; fi

lint: install
	$(PY) -m ruff check .

## Stop the embedded PostgreSQL server (it keeps running between commands otherwise).
stop: install
	$(PY) manage.py embedded_db stop

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
